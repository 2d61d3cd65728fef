"""The `launch` command line. Thin: parse, call the runner, print.

Only click and the small core modules load at start-up; pydantic, YAML, the
bundle code and every backend load inside the commands that need them, so
`launch --help` and `launch list` answer at once.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from launcher import __version__
from launcher.errors import EXIT_INTERNAL, EXIT_UNREACHABLE, EXIT_USAGE, LaunchError, UsageError

EXIT_CODES_HELP = """\b
Exit codes (run --wait/--follow, wait):
  0  the job succeeded
  1  the job failed
  2  usage or spec error (nothing was submitted)
  3  the job was cancelled
  4  the backend could not be reached (or gave no usable answer)
  70 launch itself failed (a bug: rerun with --debug)"""

STATES = ("PENDING", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED", "UNKNOWN")


class _Group(click.Group):
    """Turns LaunchError into one clear line and its exit code; --debug keeps the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LaunchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                import traceback

                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug or an unexpected environment: one line, not a traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: internal error: {exc!r}\n  hint: rerun with --debug for the traceback, "
                       "and report it", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=_Group, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-v", "--verbose", is_flag=True, help="Say more about retries and progress.")
@click.version_option(__version__, prog_name="launch")
@click.pass_context
def main(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Run one training-job spec on any GPU provider, and track it the same way everywhere.

    \b
    Start here:
      launch run job_specs/quickstart.yaml --follow   run it on this machine
      launch run spec.yaml --backend sagemaker --wait   run it on a provider
      launch list / status JOB / logs -f JOB / cancel JOB

    JOB is a job id or any unique prefix of one. State lives in $LAUNCH_HOME
    (default ~/.local/state/launch); defaults per backend in its config.toml.
    """
    ctx.obj = {"debug": debug}
    from launcher import logs

    logs.set_verbose(verbose or debug)


_output = click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="json prints machine-readable output.")


def _store() -> Any:
    from launcher.store import Store

    return Store.open()


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("-b", "--backend", default=None, help="Where to run: local (default), ssh, sagemaker, vertex, ...")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a spec field, e.g. --set resources.nodes=2 (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the exact request (secrets masked); submit nothing.")
@click.option("-w", "--wait", "wait_", is_flag=True, help="Wait for the job to end; exit with its result.")
@click.option("-f", "--follow", is_flag=True, help="Stream the job's logs until it ends (implies --wait).")
@click.option("--idempotency-key", default=None, metavar="KEY",
              help="Submitting the same key again returns the first job instead of a new one.")
@_output
def run(spec_file: str, backend: str | None, overrides: tuple[str, ...], dry_run: bool, wait_: bool,
        follow: bool, idempotency_key: str | None, output: str) -> None:
    """Submit SPEC_FILE as a job (on this machine unless --backend says otherwise)."""
    from launcher import config, runner

    if backend is not None and not backend.strip():
        raise UsageError("--backend is empty", "give a backend name; `launch backends` lists them")
    backend = backend or config.default_backend()
    if dry_run:
        _, _, request, _ = runner.prepare(spec_file, overrides, backend, dry_run=True,
                                          idempotency_key=idempotency_key)
        if output == "text":
            click.echo(f"# dry run: nothing submitted; {backend} would run {request.operation}:", err=True)
        _print_json(request.to_display())
        return
    store = _store()
    submission = runner.submit(store, spec_file, overrides, backend, idempotency_key)
    record = submission.record
    if output == "text":
        if submission.existing:
            click.echo(f"job {record.id} already exists for idempotency key {idempotency_key!r}; not submitted again")
        else:
            click.echo(f"submitted {record.id} to {record.backend}")
        if not (wait_ or follow):
            click.echo(f"  launch status {record.id}\n  launch logs -f {record.id}")
    if follow or wait_:
        record = _wait_or_follow(store, record, follow=follow, node=None, quiet=output == "json")
    if output == "json":
        _print_json({**record.to_json(), "existing": submission.existing})
    if follow or wait_:
        sys.exit(runner_exit(record))


def runner_exit(record: Any) -> int:
    from launcher.runner import exit_code_for

    return exit_code_for(record.state)


def _wait_or_follow(store: Any, record: Any, *, follow: bool, node: int | None, quiet: bool) -> Any:
    from launcher import runner

    multi = int(record.spec.get("resources", {}).get("nodes", 1)) > 1 and node is None
    try:
        if follow:  # with -o json, stdout holds only the JSON result
            record = runner.follow(store, record, _printer(multi, sys.stderr if quiet else sys.stdout), node=node)
        else:
            record = runner.wait(store, record, on_change=None if quiet else _say_state)
    except KeyboardInterrupt:
        click.echo(f"\ndetached; job {record.id} keeps running.\n"
                   f"  launch logs -f {record.id}\n  launch cancel {record.id}", err=True)
        sys.exit(130)
    if not quiet:
        _say_end(record, show_tail=not follow)
    return record


def _printer(multi: bool, stream: Any) -> Any:
    """Writes log blocks as they come: one write per block, `[node N] ` before each line
    only when several nodes share the stream."""
    def show(block: Any) -> None:
        if multi:
            prefix = f"[node {block.node}] "
            stream.write(prefix + block.text.replace("\n", "\n" + prefix) + "\n")
        else:
            stream.write(block.text + "\n")
        stream.flush()
    return show


def _say_state(record: Any) -> None:
    click.echo(f"{record.id}: {record.state.value}", err=True)


def _say_end(record: Any, *, show_tail: bool = True) -> None:
    from launcher.durations import format_seconds

    took = ""
    if record.started_at and record.ended_at:
        took = f" after {format_seconds(record.ended_at - record.started_at)}"
    line = f"job {record.id} {record.state.value}{took}"
    if record.state.value != "SUCCEEDED" and record.message:
        line += f": {record.message}"
    click.echo(line, err=True)
    if show_tail and record.state.value == "FAILED":
        _show_tail(record)


def _show_tail(record: Any) -> None:
    from launcher import runner

    try:
        blocks, _ = runner.tail(record)
    except LaunchError:
        return
    texts = [text for block in blocks for text in block.lines()]
    if texts:
        click.echo("last log lines:", err=True)
        for text in texts[-10:]:
            click.echo(f"  | {text}", err=True)


@main.command()
@click.argument("job")
@_output
def status(job: str, output: str) -> None:
    """Show a job's state, refreshed from its backend."""
    from launcher import runner

    store = _store()
    record = runner.refresh(store, store.resolve(job))
    if output == "json":
        _print_json(record.to_json())
        return
    from launcher.display import describe

    click.echo(describe(record))
    if record.state.value == "FAILED":
        _show_tail(record)


@main.command()
@click.argument("job")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the job ends.")
@click.option("--node", type=click.IntRange(min=0), default=None, help="Only this node (rank).")
@click.option("--tail", type=click.IntRange(min=0), default=None,
              help="Only the last N lines (of each node) first.")
def logs(job: str, follow: bool, node: int | None, tail: int | None) -> None:
    """Print a job's logs (all nodes, or --node N)."""
    from launcher import runner

    store = _store()
    record = store.resolve(job)
    nodes = int(record.spec.get("resources", {}).get("nodes", 1))
    if node is not None and record.spec and node >= nodes:
        raise UsageError(f"job {record.id} has {nodes} node(s); --node takes 0..{nodes - 1}")
    multi = nodes > 1 and node is None

    show = _printer(multi, sys.stdout)
    cursor = None
    if tail is not None or not follow:
        if tail is None:
            for block in runner.read_logs(record, node=node):
                show(block)
                cursor = block.cursor
        else:  # the last N lines, read from the end where the backend can
            blocks, cursor = runner.tail(record, tail, node=node)
            for block in blocks:
                show(block)
    if follow:  # from the end of what was read, or from the start
        runner.follow(store, record, show, node=node, cursor=cursor)


@main.command()
@click.argument("job")
@_output
def cancel(job: str, output: str) -> None:
    """Cancel a job (safe to repeat)."""
    from launcher import runner

    store = _store()
    record = runner.cancel(store, store.resolve(job))
    if output == "json":
        _print_json(record.to_json())
    else:
        click.echo(f"{record.id}: {record.state.value}")


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("job")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 4).")
@_output
def wait(job: str, timeout: float | None, output: str) -> None:
    """Wait for a job to end; exit 0 succeeded, 1 failed, 3 cancelled."""
    from launcher import runner

    store = _store()
    record = store.resolve(job)
    record = runner.wait(store, record, timeout_s=timeout, on_change=None if output == "json" else _say_state)
    if output == "json":
        _print_json(record.to_json())
    else:
        _say_end(record)
    sys.exit(runner.exit_code_for(record.state))


@main.command(name="list")
@click.option("-b", "--backend", default=None, help="Only jobs on this backend.")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Only jobs in this state (repeatable).")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--all", "show_all", is_flag=True, help="No limit.")
@click.option("--refresh", is_flag=True, help="Ask every backend for the state of unfinished jobs.")
@click.option("--sync", is_flag=True, help="First ask the backends what they run and reconcile the history.")
@_output
def list_(backend: str | None, states: tuple[str, ...], limit: int, show_all: bool, refresh: bool, sync: bool,
          output: str) -> None:
    """List jobs from the local history, newest first.

    Unfinished local jobs are refreshed on the spot; jobs on cloud backends show
    their last known state unless --refresh (one provider call per unfinished job).
    """
    from launcher.backend import JobState

    store = _store()
    if sync:
        from launcher import runner

        report = runner.sync(store, [backend] if backend else _configured_backends())
        click.echo(f"synced {', '.join(report.backends)}: {report.added} added, {report.updated} updated", err=True)
    wanted = tuple(JobState(s.upper()) for s in states)
    records = store.list(backend=backend, limit=None if show_all or wanted else limit)
    if any(r.needs_refresh(all_backends=refresh) for r in records):
        from launcher import runner  # only when some job needs it: `list` stays fast

        records = runner.refresh_active(store, records, all_backends=refresh)
    if wanted:
        records = [r for r in records if r.state in wanted][: None if show_all else limit]
    if output == "json":
        _print_json([r.to_json() for r in records])
        return
    from launcher.display import table

    filtered = bool(backend or wanted)
    click.echo(table(records) if records or not filtered else "no jobs match")


def _configured_backends() -> list[str]:
    from launcher import config, registry

    names = []
    for name in registry.names():
        try:
            ready = registry.backend_class(name).readiness(config.backend_settings(name))
        except LaunchError:
            continue
        if ready.sdk_installed and ready.configured:
            names.append(name)
    return names


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("-b", "--backend", default=None, help="Also check this backend's settings.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="As for run.")
def validate(spec_file: str, backend: str | None, overrides: tuple[str, ...]) -> None:
    """Check a spec and report every problem at once (exit 2 if any)."""
    from launcher import runner
    from launcher.spec import load_spec

    spec = load_spec(spec_file, overrides)
    if backend:
        runner.backend_for(backend, spec.backends.get(backend, {}), origin=spec_file)
    click.echo(f"{spec_file}: ok ({spec.name}, {spec.resources.nodes} node(s) x {spec.resources.accelerators})")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the job spec (for editor completion)."""
    from launcher.spec import json_schema

    _print_json(json_schema())


@main.command()
@_output
def backends(output: str) -> None:
    """List the backends, whether their SDK is installed and credentials/config found."""
    from launcher import config, registry

    rows = []
    for name in registry.names():
        try:
            ready = registry.backend_class(name).readiness(config.backend_settings(name))
            row = {"name": name, "sdk_installed": ready.sdk_installed, "configured": ready.configured,
                   "detail": ready.detail, "hint": ready.hint}
        except LaunchError as exc:
            row = {"name": name, "sdk_installed": False, "configured": False, "detail": exc.message,
                   "hint": exc.hint}
        rows.append(row)
    if output == "json":
        _print_json(rows)
        return
    for row in rows:
        mark = "ready" if row["sdk_installed"] and row["configured"] else "not ready"
        click.echo(f"{row['name']:<14} {mark:<10} {row['detail']}")
        if row["hint"]:
            click.echo(f"{'':<14} {'':<10} hint: {row['hint']}")


def run_main() -> None:
    """Console-script entry: click's own usage errors already exit 2."""
    try:
        main(prog_name="launch")
    except LaunchError as exc:  # raised outside a command (e.g. while parsing)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


assert EXIT_USAGE == 2 and EXIT_UNREACHABLE == 4
