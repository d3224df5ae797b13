"""The `cost-api` command line: README.md's list of commands is the parser's, and bad flags are one line."""

from __future__ import annotations

import argparse
import re
import socket
from pathlib import Path

import pytest

from cost_api.cli import build_parser, main

README = Path(__file__).parents[1] / "README.md"


def _readme_commands() -> dict[str, set[str]]:
    """`{"pricing resolve": {"--at", "--config"}, …}` from the usage lines of README's Command line."""
    section = README.read_text().split("## Command line", 1)[1]
    commands = {}
    for line in section.splitlines():
        if line.startswith("    cost-api "):
            usage = line.split("#", 1)[0].split()[1:]
            path = " ".join(word for word in usage if re.fullmatch("[a-z]+", word))
            commands[path] = set(re.findall(r"--[a-z-]+", line.split("#", 1)[0]))
    return commands


def _parser_commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, set[str]]:
    """The same from the parser: every subcommand, down to the leaves, with its long options."""
    commands: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands |= _parser_commands(sub, f"{prefix}{name} ")
    if not commands:
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
        commands[prefix.strip()] = options
    return commands


def test_the_readme_lists_every_command_with_its_flags() -> None:
    assert _readme_commands() == _parser_commands(build_parser())


def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = re.findall(r"^    (\w+) ", capsys.readouterr().out, flags=re.M)
    assert listed == ["serve", "demo", "pricing", "report", "smoke", "alerts", "settings"]
    assert {path.split()[0] for path in _readme_commands()} == set(listed)


@pytest.mark.parametrize(
    ("at", "day"),
    [
        ("1700000000000", "2023-11-14"),  # epoch ms, as Grafana sends: 2023-11-14T22:13:20Z
        ("2024-11-29T23:30:00-02:00", "2024-11-30"),  # RFC 3339 with an offset: 01:30 UTC the next day
    ],
)
def test_pricing_resolve_takes_the_times_the_api_takes(at: str, day: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "resolve", "openai", "gpt-4o-mini", "--at", at]) == 0
    out = capsys.readouterr().out
    assert f"on {day} (UTC)" in out
    assert "input 0.15 output 0.6" in out  # the list price, USD per 1M tokens


@pytest.mark.parametrize("at", ["yesterday", "2026-11-29T19:00:00", "17000000000000000000000"])
def test_pricing_resolve_refuses_others_in_one_line(at: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing", "resolve", "openai", "gpt-4o-mini", "--at", at]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cost-api: --at: expected RFC 3339 with an offset") and err.count("\n") == 1
    assert "Traceback" not in err


def test_alerts_receive_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["alerts", "receive", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cost-api: alerts receive: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1
