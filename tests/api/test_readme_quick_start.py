"""The README's quick start works as pasted.

Runs every `sh` block of the "Quick start" section, in order, in bash, against a real server
(SQLite and PostgreSQL), and compares each response that the README shows in full (a `# {...}`
comment line without `...`) with what the command printed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
CLI_BLOCK_MARKER = ".venv/bin/allotment"


def _quick_start_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("## Quick start")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"```sh\n(.*?)```", text[start:end], flags=re.S)
    # `make serve` starts the server (the fixture does that here) and the CLI block runs against
    # the developer's own database; the HTTP blocks are what a newcomer pastes.
    return [b for b in blocks if "make serve" not in b and CLI_BLOCK_MARKER not in b]


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """Split a block into commands (joining continuation lines), each with the full JSON lines
    the README shows right after it."""
    commands: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for line in block.splitlines():
        if line.startswith("# "):
            if commands:
                commands[-1][1].append(line[2:])
            continue
        if not line.strip():
            continue
        current.append(line)
        if not line.rstrip().endswith("\\") and _quotes_balanced("\n".join(current)):
            commands.append(("\n".join(current), []))
            current = []
    assert not current, f"unterminated command in README: {current}"
    return commands


def _quotes_balanced(text: str) -> bool:
    single = text.count("'") % 2 == 0
    double = (text.count('"') - text.count('\\"')) % 2 == 0
    return single and double


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's quick start uses curl")
def test_quick_start_works_as_pasted(live_server: LiveServer) -> None:
    live_server.clock.release()  # the README runs in real time
    environment = f"export ALLOTMENT_API_KEY={live_server.admin_key}\n"
    blocks = _quick_start_blocks()
    assert len(blocks) >= 5
    checked = 0
    for block in blocks:
        for command, expected_lines in _commands(block):
            if command.startswith("export ALLOTMENT_API_KEY"):
                continue
            command = command.replace("http://127.0.0.1:8888", live_server.url)
            script = environment + "set -e\n" + command
            result = subprocess.run(
                ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=False
            )
            assert result.returncode == 0, f"{command}\n{result.stderr}"
            if command.startswith("export "):
                environment += command + "\n"
                continue
            full = [line for line in expected_lines if line.startswith("{") and "..." not in line]
            if full:
                assert json.loads(result.stdout) == json.loads(full[0]), command
                checked += 1
            elif result.stdout.startswith("{"):
                body = json.loads(result.stdout)
                assert "status" not in body or body["status"] < 400, (command, body)
    assert checked >= 3
