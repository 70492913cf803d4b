"""Every `tokenops ...` command that docs/operations.md tells an operator to paste is
accepted by the real CLI: the subcommand exists, each option and argument parses
(click's own parser, as when run, without executing it), and `--help` of that
subcommand runs and lists every option the command uses.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tokenops.cli import app

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_commands() -> list[str]:
    """`tokenops ...` lines of code blocks and inline code spans, comments removed."""
    text = OPERATIONS.read_text()
    found: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL):
        found += [line for line in block.splitlines() if line.strip().startswith("tokenops ")]
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    found += re.findall(r"`(tokenops [^`]+)`", prose.replace("\n", " "))
    commands = [re.split(r"\s+#", command.strip())[0].strip() for command in found]
    return sorted(set(commands))


def is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")  # Typer bundles its own click: duck-type


def resolve(command: str) -> tuple[list[str], Any, list[str]]:
    """The subcommand path, the (click) command and its own arguments."""
    argv = shlex.split(command)[1:]
    current: Any = typer.main.get_command(app)
    path: list[str] = []
    while is_group(current) and argv and not argv[0].startswith("-"):
        sub = current.get_command(typer.Context(current), argv[0])
        assert sub is not None, f"{command!r}: no subcommand {argv[0]!r} after {path}"
        path.append(argv.pop(0))
        current = sub
    return path, current, argv


def test_the_runbooks_have_commands_to_check() -> None:
    commands = documented_commands()
    assert len(commands) >= 8, commands
    assert any(c.startswith("tokenops quota set") for c in commands)


@pytest.mark.parametrize("command", documented_commands())
def test_a_documented_command_parses_and_its_help_lists_its_options(command: str) -> None:
    # Pasted into a shell, `<tenant>` is a redirection and `[...]` a glob: no placeholders.
    assert not re.search(r"[<>\[\]]|\.\.\.", command), f"{command!r} has a placeholder"
    path, cli, args = resolve(command)
    assert path and not is_group(cli), f"{command!r} names a group, not a command"
    try:
        cli.make_context(" ".join(["tokenops", *path]), list(args))
    except Exception as exc:  # click's UsageError family, from Typer's bundled click
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise AssertionError(f"{command!r}: {message}") from exc
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert option in result.output, f"{command!r}: {option} missing from --help"
