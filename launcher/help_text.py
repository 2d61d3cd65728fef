"""`launch --help` as click renders it at full width, kept here so the entry point (launcher/cli.py)
answers without importing click. Regenerate after changing a command's help:

    python -m launcher.help_text

tests/test_help_text.py fails while this text differs from click's own rendering.
"""

from __future__ import annotations

from launcher import __version__

HELP = """\
Usage: launch [OPTIONS] COMMAND [ARGS]...

  Run one training-job spec on any GPU provider, and track it the same way
  everywhere.

  Start here:
    launch run job_specs/quickstart.yaml --follow   run it on this machine
    launch run spec.yaml --backend sagemaker --wait   run it on a provider
    launch list / status JOB / logs -f JOB / cancel JOB

  JOB is a job id or any unique prefix of one; without it, status, logs, wait
  and cancel take the newest job. State lives in $LAUNCH_HOME (default
  ~/.local/state/launch); defaults per backend in its config.toml.

Options:
  --debug        Show tracebacks for errors.
  -v, --verbose  Say more about retries and progress.
  --version      Show the version and exit.
  -h, --help     Show this message and exit.

Commands:
  backends  List the backends, whether their SDK is installed and...
  cancel    Cancel a job (default: the newest), or every unfinished job of...
  catalog   The instance types and list prices launch knows, with source...
  list      List jobs from the history (this machine's, or the team's...
  logs      Print a job's logs (all nodes, or --node N; default: the newest...
  plan      Where SPEC_FILE could run: instance type, GPUs, price, cost for...
  run       Submit SPEC_FILE as a job (on this machine unless --backend...
  schema    Print the JSON Schema of the job spec (for editor completion).
  status    Show a job's state, refreshed from its backend (default: the...
  store     The job history's store: this machine's SQLite file, or a...
  ui        A web dashboard of the job history: every job on every backend,...
  validate  Check a spec and report every problem at once (exit 2 if any).
  wait      Wait for a job to end (default: the newest job); exit 0...

  Exit codes (run --wait/--follow, wait):
    0  the job succeeded
    1  the job failed
    2  usage or spec error (nothing was submitted)
    3  the job was cancelled
    4  the backend could not be reached (or gave no usable answer)
    70 launch itself failed (a bug: rerun with --debug)
    130/143 interrupted (Ctrl-C / SIGTERM): run cancels the job first,
       unless --detach-on-interrupt
"""


def version() -> str:
    """What click's version_option prints."""
    return f"launch, version {__version__}\n"


def render(args: tuple[str, ...]) -> tuple[str, str, int]:
    """Click's own answer to `launch ARGS` at full width: (stdout, stderr, exit code)."""
    from click.testing import CliRunner

    from launcher.commands import main

    result = CliRunner().invoke(main, list(args), prog_name="launch", terminal_width=80,
                                env={"COLUMNS": "80"})
    return result.stdout, result.stderr, result.exit_code


def _write() -> None:
    from pathlib import Path

    text = render(("--help",))[0]
    if "\\" in text or '"""' in text:
        raise SystemExit("the help holds a backslash or triple quote: write HELP with escapes by hand")
    path = Path(__file__)
    source = path.read_text()
    head, _, rest = source.partition('HELP = """\\\n')
    _, _, tail = rest.partition('"""\n')
    path.write_text(f'{head}HELP = """\\\n{text}"""\n{tail}')


if __name__ == "__main__":
    _write()
