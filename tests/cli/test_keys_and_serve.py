"""The first-run experience: `allotment serve` migrates, prints an admin key once and serves on
127.0.0.1:8888; `allotment keys` creates (printing only the key), lists and revokes keys."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from allotment.cli.main import app
from allotment.cli.state import STATE
from allotment.domain.api_keys import Action, Scope
from allotment.domain.time import rfc3339
from allotment.errors import Unauthenticated
from allotment.services import api_keys
from allotment.services.context import ServiceContext
from allotment.storage import Database
from tests.cli.conftest import WIDE, Cli, reset_state


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Records what `serve` hands to uvicorn instead of blocking in it."""
    calls: list[dict[str, Any]] = []

    def fake_run(application: Any, **options: Any) -> None:
        calls.append({"app": application, **options})

    monkeypatch.setattr("uvicorn.run", fake_run)
    return calls


def _printed_key(output: str) -> str:
    [key] = {word for word in output.split() if word.startswith(api_keys.KEY_PREFIX)}
    return key


def test_first_start_on_a_fresh_file_migrates_and_prints_one_working_key(
    tmp_path: Path, served: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    runner = CliRunner()
    try:
        reset_state()
        first = runner.invoke(app, ["--database-url", url, "serve"], env=WIDE)
        assert first.exit_code == 0, first.output
        assert "Created an admin API key. It is shown only once" in first.stdout
        key = _printed_key(first.stdout)
        assert f"export ALLOTMENT_API_KEY={key}" in first.stdout

        [call] = served
        assert (call["host"], call["port"]) == ("127.0.0.1", 8888)
        with TestClient(call["app"]) as client:
            assert client.get("/readyz").json() == {"status": "ok"}
            headers = {"Authorization": f"Bearer {key}"}
            assert client.get("/api/v1/subjects", headers=headers).status_code == 200
        STATE.context.database.dispose()

        reset_state()
        second = runner.invoke(
            app, ["--database-url", url, "serve", "--host", "0.0.0.0", "--port", "9999"], env=WIDE
        )
        assert second.exit_code == 0, second.output
        assert api_keys.KEY_PREFIX not in second.output
        assert "Created an admin API key" not in second.output
        assert (served[1]["host"], served[1]["port"]) == ("0.0.0.0", 9999)
    finally:
        if "context" in STATE.__dict__:
            STATE.context.database.dispose()
        reset_state()


def test_serve_creates_a_key_only_while_none_is_active(
    cli: Cli, context: ServiceContext, database: Database, served: list[dict[str, Any]]
) -> None:
    first = cli("--database-url", database.url, "serve")
    assert first.exit_code == 0, first.output
    key = api_keys.authenticate(context, _printed_key(first.stdout), Action.MANAGE)
    assert (key.scope, key.name) == (Scope.ADMIN, "first admin key")

    second = cli("--database-url", database.url, "serve")
    assert (second.exit_code, api_keys.KEY_PREFIX in second.output) == (0, False)
    assert len(served) == 2
    assert [k.id for k in api_keys.list_keys(context)] == [key.id]


def test_keys_create_prints_only_the_key(cli: Cli, context: ServiceContext) -> None:
    result = cli("keys", "create", "--scope", "ingest", "--name", "collector")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert result.stdout == secret + "\n"
    assert secret.startswith(api_keys.KEY_PREFIX)
    key = api_keys.authenticate(context, secret, Action.INGEST)
    assert (key.name, key.scope) == ("collector", Scope.INGEST)


def test_keys_list_and_revoke(cli: Cli, context: ServiceContext) -> None:
    secret = cli("keys", "create", "--scope", "read").stdout.strip()
    [key] = api_keys.list_keys(context)

    table = cli("keys", "list")
    assert table.exit_code == 0
    assert key.id in table.stdout and key.prefix in table.stdout and "read" in table.stdout
    assert secret not in table.stdout

    [listed] = json.loads(cli("keys", "list", "--json").stdout)
    assert listed == {
        "id": key.id,
        "name": "read key",
        "scope": "read",
        "prefix": key.prefix,
        "createdAt": rfc3339(key.created_at),
        "revokedAt": None,
    }
    assert listed["createdAt"].endswith("Z")  # RFC 3339 UTC, as the API writes times
    assert datetime.fromisoformat(listed["createdAt"]) == key.created_at

    revoked = cli("keys", "revoke", key.prefix)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked {key.id}" in revoked.stderr
    with pytest.raises(Unauthenticated):
        api_keys.authenticate(context, secret, Action.READ)
    assert json.loads(cli("keys", "list", "--json").stdout) == []
    [with_revoked] = json.loads(cli("keys", "list", "--include-revoked", "--json").stdout)
    assert with_revoked["revokedAt"] is not None


def test_keys_errors_are_plain_words(cli: Cli) -> None:
    bad_scope = cli("keys", "create", "--scope", "root")
    assert bad_scope.exit_code == 1
    assert bad_scope.stdout == ""
    assert "Error (invalid input): unknown scope 'root'" in bad_scope.stderr
    missing = cli("keys", "revoke", "alt_nothing")
    assert missing.exit_code == 1
    assert "Error (not found)" in missing.stderr
