"""`allotment features ...`: tables for people, JSON for scripts, plain-word errors."""

from __future__ import annotations

import json

from allotment.services.context import ServiceContext
from tests.cli.conftest import Cli
from tests.conftest import SettableClock
from tests.factories import make_meter


def test_create_list_get_archive(cli: Cli, context: ServiceContext, clock: SettableClock) -> None:
    make_meter(context, "tokens", group_by={"model": "$.model"})

    created = cli(
        "features", "create", "--key", "gpt4_tokens", "--name", "GPT-4 tokens",
        "--meter-slug", "tokens", "--filter", "model=gpt-4", "--metadata", "team=ai", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    document = json.loads(created.stdout)
    assert document == {
        "id": document["id"],
        "key": "gpt4_tokens",
        "name": "GPT-4 tokens",
        "metadata": {"team": "ai"},
        "meterSlug": "tokens",
        "meterGroupByFilters": {"model": "gpt-4"},
        "advancedMeterGroupByFilters": {"model": {"$eq": "gpt-4"}},
        "createdAt": "2024-01-15T12:00:00Z",
        "updatedAt": "2024-01-15T12:00:00Z",
    }

    table = cli("features", "create", "--key", "sso", "--name", "SAML SSO")
    assert table.exit_code == 0, table.output
    assert "sso" in table.stdout and "SAML SSO" in table.stdout

    listed = cli("features", "list")
    assert listed.exit_code == 0
    lines = [line for line in listed.stdout.splitlines() if "gpt4_tokens" in line or "sso" in line]
    assert len(lines) == 2
    assert "model=gpt-4" in lines[0] and "tokens" in lines[0]

    shown = cli("features", "get", "gpt4_tokens", "--json")
    assert json.loads(shown.stdout) == document

    clock.set(clock().replace(hour=13))
    archived = cli("features", "archive", "sso")
    assert archived.exit_code == 0
    assert "archived sso" in archived.stderr
    assert [f["key"] for f in json.loads(cli("features", "list", "--json").stdout)] == [
        "gpt4_tokens"
    ]
    everything = json.loads(cli("features", "list", "--include-archived", "--json").stdout)
    assert [(f["key"], f.get("archivedAt")) for f in everything] == [
        ("gpt4_tokens", None),
        ("sso", "2024-01-15T13:00:00Z"),
    ]


def test_errors_are_plain_words_and_exit_1(cli: Cli, context: ServiceContext) -> None:
    make_meter(context, "latency", aggregation="MAX")
    cases = [
        (["--key", "Bad-Key", "--name", "x"], "invalid input", "key"),
        (["--key", "k", "--name", "x", "--meter-slug", "nope"], "not found", "meter not found"),
        (["--key", "k", "--name", "x", "--meter-slug", "latency"], "invalid input", "MAX"),
        (["--key", "k", "--name", "x", "--filter", "model"], "invalid input", "KEY=VALUE"),
    ]
    for arguments, kind, words in cases:
        result = cli("features", "create", *arguments)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert f"Error ({kind})" in result.stderr
        assert words in result.stderr
        assert "Traceback" not in result.output

    assert cli("features", "create", "--key", "k", "--name", "x").exit_code == 0
    duplicate = cli("features", "create", "--key", "k", "--name", "x")
    assert (duplicate.exit_code, "Error (conflict)" in duplicate.stderr) == (1, True)
    missing = cli("features", "get", "nope")
    assert (missing.exit_code, "Error (not found)" in missing.stderr) == (1, True)
