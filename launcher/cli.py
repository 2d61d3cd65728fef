"""The `launch` entry point.

`launch`, `launch --help`, `-h` and `--version` are answered from text rendered ahead
(launcher/help_text.py), without importing click and the commands: those imports are most
of the time these answers took (~35 ms on a ~25 ms interpreter). Every other command line
goes to the click app in launcher/commands.py. tests/test_help_text.py renders click's own
answers and checks the text is the same, so it cannot drift from the commands.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` costs more than everything else --help needs
if TYPE_CHECKING:
    from typing import Any, TextIO

# the command lines answered ahead, and the terminal width click's help needs to render the same
PRERENDERED = ((), ("--help",), ("-h",), ("--version",))
COMPLETE_VAR = "_LAUNCH_COMPLETE"  # click's shell-completion protocol (README), for the program named launch
HELP_WIDTH = 80  # click wraps help to min(terminal width, 80) - 2: any terminal this wide gets the same text


def run_main() -> None:
    """Console-script entry."""
    answer = prerendered(tuple(sys.argv[1:]))
    if answer is not None:
        stream, text, code = answer
        stream.write(text)
        stream.flush()
        sys.exit(code)
    from launcher.commands import run_main as run_commands

    run_commands()


def prerendered(args: tuple[str, ...]) -> tuple[TextIO, str, int] | None:
    """Where click would write its answer to `args`, the text and the exit code; None for anything
    else (and on a terminal narrower than click's help width, where click wraps differently)."""
    if args not in PRERENDERED or COMPLETE_VAR in os.environ:  # a shell asking for completions: click answers
        return None
    if _terminal_columns() < HELP_WIDTH:
        return None
    from launcher import help_text

    if args == ("--version",):
        return sys.stdout, help_text.version(), 0
    if not args:  # click shows the help on stderr and exits 2 (a usage error)
        return sys.stderr, help_text.HELP, 2
    return sys.stdout, help_text.HELP, 0


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns, which click's help formatter reads, without importing
    shutil (and the compression modules it loads)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def __getattr__(name: str) -> Any:
    """`launcher.cli.main` and the rest of the click app, for callers that import them from here.
    Dunder names are the import system asking (`__path__`): answering those must not load click."""
    if name.startswith("__"):
        raise AttributeError(name)
    from launcher import commands

    return getattr(commands, name)
