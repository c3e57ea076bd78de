"""Entry point of the `allotment` command."""

from __future__ import annotations

from typing import Annotated

import typer

from allotment import logs
from allotment.cli import (
    access,
    customers,
    entitlements,
    events,
    features,
    grants,
    keys,
    meters,
    notifications,
    plans,
    subscriptions,
)
from allotment.cli.state import STATE
from allotment.settings import Settings

app = typer.Typer(
    help="Allotment: usage metering and feature entitlements.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(meters.app, name="meters")
app.add_typer(customers.app, name="customers")
app.add_typer(features.app, name="features")
app.add_typer(entitlements.app, name="entitlements")
app.add_typer(grants.app, name="grants")
app.add_typer(events.app, name="events")
app.add_typer(plans.app, name="plans")
app.add_typer(subscriptions.app, name="subscriptions")
app.add_typer(notifications.app, name="notifications")
app.command("access")(access.access)


@app.callback()
def main(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="ALLOTMENT_DATABASE_URL",
            help="SQLAlchemy URL; default: a SQLite file allotment.db in the working directory",
        ),
    ] = None,
) -> None:
    STATE.settings = Settings(database_url=database_url) if database_url else Settings()
    logs.configure_audit_only(STATE.settings)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from allotment.storage.migrations import upgrade

    upgrade(STATE.settings.database_url)
    typer.echo("database is up to date", err=True)


@app.command()
def maintenance() -> None:
    """Fold pending usage into the roll-ups, finish meter backfills, drop stale series.

    Runs until nothing is left. Servers do this on their own every
    ALLOTMENT_MAINTENANCE_INTERVAL_SECONDS; this is for servers run with it at 0."""
    from allotment.api.notification_payloads import render_payload_data
    from allotment.services.maintenance import run_until_idle

    report = run_until_idle(STATE.context, render_payload_data)
    typer.echo(
        f"folded {report.compacted} usage deltas, backfilled {report.backfilled} event "
        f"positions, dropped {report.dropped} stale series, evaluated notifications of "
        f"{report.notified} entitlements",
        err=True,
    )


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Do what is due now, then exit (default: run on)")
    ] = False,
) -> None:
    """Evaluate notification rules and deliver webhooks, with the rest of maintenance.

    Every server does this itself; run it for servers started with
    ALLOTMENT_WEBHOOK_SENDER_ENABLED=false or ALLOTMENT_MAINTENANCE_INTERVAL_SECONDS=0. Any
    number of workers and servers may run at once: each delivery attempt is made once."""
    from allotment.api.notification_payloads import render_payload_data
    from allotment.errors import Unavailable
    from allotment.services.maintenance import run_once, run_until_idle
    from allotment.services.notification_sender import Sender

    context = STATE.context
    sender = Sender(context, timeout=STATE.settings.webhook_timeout_seconds)
    pause = STATE.settings.maintenance_interval_seconds or 1.0
    try:
        if once:
            run_until_idle(context, render_payload_data)
            sent = sender.send_until_idle()
            typer.echo(f"attempted {sent} webhook deliveries", err=True)
            return
        while True:
            try:
                busy = run_once(context, render_payload_data).did_work
                busy = bool(sender.send_due()) or busy
            except Unavailable:
                busy = False
            if not busy:
                context.caches.sender_wanted.wait(pause)
                context.caches.sender_wanted.clear()
    except KeyboardInterrupt:
        pass
    finally:
        sender.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Run migrations before serving")
    ] = True,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes (default 1, or $ALLOTMENT_WORKERS); about one per core",
        ),
    ] = None,
) -> None:
    """Serve the API. On first start it creates an admin key and prints it once."""
    import os

    import uvicorn

    from allotment.api.app import create_app
    from allotment.api.server import serve as serve_http
    from allotment.api.server import server_options
    from allotment.services import api_keys
    from allotment.storage.migrations import upgrade

    settings = STATE.settings
    workers = workers or settings.workers
    if migrate_first:
        upgrade(settings.database_url)
    if not api_keys.has_keys(STATE.context):
        _key, secret = api_keys.create_key(STATE.context, "admin", "first admin key")
        typer.echo("Created an admin API key. It is shown only once; store it now:")
        typer.echo(f"\n    {secret}\n")
        typer.echo(f"  export ALLOTMENT_API_KEY={secret}\n")
    if workers == 1:
        serve_http(
            create_app(settings, context=STATE.context),
            settings,
            host=host or settings.host,
            port=port or settings.port,
        )
        return
    # Each worker is a fresh process that builds its own app (and database pool) from the
    # environment, so the database chosen here is handed down through it.
    os.environ["ALLOTMENT_DATABASE_URL"] = settings.database_url
    os.environ["ALLOTMENT_POOL_SIZE"] = str(settings.pool_size)
    STATE.context.database.dispose()
    uvicorn.run(
        "allotment.api.app:create_app_from_environment",
        factory=True,
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        **server_options(settings, workers=workers),
    )


if __name__ == "__main__":
    app()
