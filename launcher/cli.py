"""The `launch` entry point.

`launch`, `launch --help`, `-h` and `--version` are answered from text rendered ahead
(launcher/help_text.py), without importing click and the commands: those imports are most
of the time these answers took (~35 ms on a ~25 ms interpreter). A bare `launch list` runs
the list command's body here, with click's defaults, for the same reason. Every other
command line goes to the click app in launcher/commands.py. tests/test_help_text.py checks
both against click's own answers, so neither can drift from the commands.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # `typing` costs more than everything else --help needs
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

# the command lines answered ahead, and the terminal width click's help needs to render the same
PRERENDERED = ((), ("--help",), ("-h",), ("--version",))
COMPLETE_VAR = "_LAUNCH_COMPLETE"  # click's shell-completion protocol (README), for the program named launch
HELP_WIDTH = 80  # click wraps help to min(terminal width, 80) - 2: any terminal this wide gets the same text


def run_main() -> None:
    """Console-script entry."""
    args = tuple(sys.argv[1:])
    answer = prerendered(args)
    if answer is not None:
        stream, text, code = answer
        stream.write(text)
        stream.flush()
        sys.exit(code)
    if args == ("list",) and COMPLETE_VAR not in os.environ:  # the most run command, with click's defaults
        sys.exit(guarded(lambda: list_jobs(**LIST_DEFAULTS), debug=lambda: False) or 0)
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


# `launch list`'s options as click gives them when none is given (tests/test_help_text.py compares)
LIST_DEFAULTS: dict[str, Any] = {"backend": None, "states": (), "limit": 50, "show_all": False, "refresh": False,
                                 "sync": False, "mine": False, "user": None, "ci": False, "group": None,
                                 "output": "text"}


def list_jobs(*, backend: str | None, states: tuple[str, ...], limit: int, show_all: bool, refresh: bool,
              sync: bool, mine: bool, user: str | None, ci: bool, group: str | None, output: str) -> None:
    """`launch list` (the click command parses its options and calls this). No click here: a bare
    `launch list` runs it straight from run_main."""
    from launcher.backend import JobState
    from launcher.errors import UsageError
    from launcher.store import open_store

    if mine and user:
        raise UsageError("give --mine or --user USER, not both")
    if mine:
        from launcher import ci_env

        user = ci_env.submitter({})[0]
    store = open_store()
    if sync:
        from launcher import runner

        report = runner.sync(store, [backend] if backend else _configured_backends())
        _say(f"synced {', '.join(report.backends)}: {report.added} added, {report.updated} updated")
    wanted = tuple(JobState(s.upper()) for s in states)
    if group is not None:
        group = store.resolve_group(group)
    records = store.list(backend=backend, group=group, user=user, ci=ci,
                         limit=None if show_all or wanted or group else limit)
    if any(r.needs_refresh(all_backends=refresh) for r in records):
        from launcher import runner  # only when some job needs it: `list` stays fast

        records = runner.refresh_active(store, records, all_backends=refresh)
    if wanted:
        records = [r for r in records if r.state in wanted][: None if show_all else limit]
    if output == "json":
        import json

        print(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True, default=str), flush=True)
        return
    from launcher import display

    filtered = bool(backend or wanted or group or user or ci)
    display.write(display.job_table(records) if records or not filtered else "no jobs match")


def _configured_backends() -> list[str]:
    from launcher import registry, runner
    from launcher.errors import LaunchError

    names = []
    for name in registry.names():
        try:
            ready = runner.readiness(name)
        except LaunchError:
            continue
        if ready.sdk_installed and ready.configured:
            names.append(name)
    return names


def guarded(call: Callable[[], Any], *, debug: Callable[[], bool],
            passthrough: tuple[type[BaseException], ...] = ()) -> int | None:
    """Run a command: None when it returned, else the exit code of what it raised, said in one line
    (a LaunchError's message; --debug adds the traceback). Exceptions in `passthrough` (click's own
    exits) go up untouched."""
    from launcher.errors import EXIT_INTERNAL, LaunchError

    try:
        call()
        return None
    except passthrough:
        raise
    except LaunchError as exc:
        if debug():
            import traceback

            traceback.print_exc()
        _say(f"error: {exc}")
        return exc.exit_code
    except BrokenPipeError:  # `launch list | head`: the reader has what it wanted
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:  # a bug or an unexpected environment: one line, not a traceback
        if debug():
            raise
        _say(f"error: internal error: {exc!r}\n  hint: rerun with --debug for the traceback, and report it")
        return EXIT_INTERNAL


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
