"""`allotment keys ...`: create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from allotment.cli.output import plain_errors, print_records, time_cell, time_text
from allotment.cli.state import STATE
from allotment.services import api_keys

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@app.command("create")
def create(
    scope: Annotated[str, typer.Option(help="admin (everything), ingest (POST events) or read")],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by")] = None,
) -> None:
    """Create a key and print it. It is shown only this once: store it now."""
    with plain_errors():
        _key, secret = api_keys.create_key(STATE.context, scope, name)
    typer.echo(secret)


@app.command("list")
def list_keys(
    include_revoked: Annotated[bool, typer.Option("--include-revoked")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List keys (their prefix only; secrets are never stored)."""
    keys = api_keys.list_keys(STATE.context, include_revoked=include_revoked)
    print_records(
        "API keys",
        ["id", "name", "scope", "prefix", "created", "revoked"],
        [
            [
                k.id,
                k.name,
                k.scope.value,
                k.prefix + "…",
                time_cell(k.created_at),
                time_cell(k.revoked_at),
            ]
            for k in keys
        ],
        [
            {
                "id": k.id,
                "name": k.name,
                "scope": k.scope.value,
                "prefix": k.prefix,
                "createdAt": time_text(k.created_at),
                "revokedAt": time_text(k.revoked_at),
            }
            for k in keys
        ],
        as_json,
    )


@app.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="The key's id or prefix")]) -> None:
    """Revoke a key: requests carrying it get 401 from then on."""
    with plain_errors():
        revoked = api_keys.revoke_key(STATE.context, key)
    typer.echo(f"revoked {revoked.id} ({revoked.name})", err=True)
