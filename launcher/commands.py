"""The `launch` commands (click). Thin: parse, call the runner, print.

Only click and the small core modules load at start-up; pydantic, YAML, the
bundle code and every backend load inside the commands that need them, so
`launch list` answers at once. The entry point is launcher/cli.py, which answers
`launch --help` and `--version` before this module (and click) is imported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from launcher import __version__
from launcher.cli import guarded, list_jobs
from launcher.errors import EXIT_UNREACHABLE, EXIT_USAGE, LaunchError, UsageError

if TYPE_CHECKING:  # pydantic is imported only by commands that read a spec
    from launcher.spec import JobSpec, SpecFile

EXIT_CODES_HELP = """\b
Exit codes (run --wait/--follow, wait):
  0  the job succeeded
  1  the job failed
  2  usage or spec error (nothing was submitted)
  3  the job was cancelled
  4  the backend could not be reached (or gave no usable answer)
  70 launch itself failed (a bug: rerun with --debug)
  130/143 interrupted (Ctrl-C / SIGTERM): run cancels the job first,
     unless --detach-on-interrupt"""

STATES = ("PENDING", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED", "UNKNOWN")


class _Group(click.Group):
    """Turns LaunchError into one clear line and its exit code; --debug keeps the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        result: list[Any] = []
        code = guarded(lambda: result.append(super(_Group, self).invoke(ctx)),
                       debug=lambda: bool(ctx.obj and ctx.obj.get("debug")),
                       passthrough=(click.exceptions.Exit, click.ClickException))
        if code is not None:
            ctx.exit(code)
        return result[0]


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

    JOB is a job id or any unique prefix of one; without it, status, logs, wait
    and cancel take the newest job. State lives in $LAUNCH_HOME
    (default ~/.local/state/launch); defaults per backend in its config.toml.
    """
    ctx.obj = {"debug": debug}
    from launcher import logs

    logs.set_verbose(verbose or debug)


_output = click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="json prints machine-readable output.")


def _store() -> Any:
    """The configured job store: this machine's SQLite file, or the team's PostgreSQL (`store_url`)."""
    from launcher.store import open_store

    return open_store()


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _job(store: Any, job: str | None) -> Any:
    """JOB as given (an id or a unique prefix), or without one the newest job, named on stderr
    so a script's stdout stays the job's own output."""
    if job is not None:
        return store.resolve(job)
    record = store.newest()
    click.echo(f"(no JOB given: the newest job, {record.id})", err=True)
    return record


def _complete_from_store(kind: str) -> Any:
    """Shell completion of job or group ids: one SQLite read, no backend imports, and nothing
    created when there is no history yet. Any failure completes nothing rather than breaking the shell."""
    def complete(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        from launcher import config
        from launcher.store import Store, configured_url, open_store

        try:
            path = config.home() / "jobs.db"
            if configured_url():
                store = open_store()
            elif not path.is_file():
                return []
            else:
                store = Store(path)
            try:
                found = store.job_ids(incomplete) if kind == "job" else store.group_ids(incomplete)
            finally:
                store.close()
        except Exception:  # completion must never print a traceback into the prompt
            return []
        return [CompletionItem(value) for value in found]
    return complete


_job_argument = click.argument("job", required=False, shell_complete=_complete_from_store("job"))


class _InstalledBackendsHelp(click.Option):
    """An option whose help names the installed backends ({backends} in its text). The registry
    reads entry points without importing a backend, and only when the help is shown, so a
    plugin appears there and no other command pays for the scan."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from launcher import registry

        default = registry.DEFAULT_BACKEND
        listed = [f"{n} (default)" if n == default else n for n in sorted(registry.names(), key=lambda n: n != default)]
        template, self.help = self.help, (self.help or "").format(backends=", ".join(listed) or "none installed")
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = template


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("-b", "--backend", cls=_InstalledBackendsHelp, default=None, metavar="NAME[,NAME...]|cheapest",
              help="Where to run: {backends}. "
                   "'a,b' tries a, then b only if a has no capacity; 'cheapest' picks the cheapest "
                   "configured backend that fits (see `launch plan`).")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a spec field, e.g. --set resources.nodes=2 (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the exact request (secrets masked); submit nothing.")
@click.option("-w", "--wait", "wait_", is_flag=True, help="Wait for the job to end; exit with its result.")
@click.option("-f", "--follow", is_flag=True, help="Stream the job's logs until it ends (implies --wait).")
@click.option("--idempotency-key", default=None, metavar="KEY",
              help="Submitting the same key again returns the first job instead of a new one. Under GitHub "
                   "Actions / GitLab CI it defaults to the CI step's identity; --idempotency-key '' turns that off.")
@click.option("--detach-on-interrupt", is_flag=True,
              help="On Ctrl-C / SIGTERM while waiting, leave the job running (default: cancel it).")
@click.option("--sweep", "sweeps", multiple=True, metavar="NAME=V1,V2",
              help="Submit one job per combination; values reach the job as env vars and ${NAME} in the spec.")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None,
              help="With --sweep: at most this many of the sweep's jobs unfinished at once (default: all).")
@_output
def run(spec_file: str, backend: str | None, overrides: tuple[str, ...], dry_run: bool, wait_: bool,
        follow: bool, idempotency_key: str | None, detach_on_interrupt: bool, sweeps: tuple[str, ...],
        max_parallel: int | None, output: str) -> None:
    """Submit SPEC_FILE as a job (on this machine unless --backend says otherwise)."""
    from launcher import config, registry, runner

    if backend is not None and not backend.strip():
        raise UsageError("--backend is empty", "give a backend name; `launch backends` lists them")
    backend_text = backend or config.default_backend()
    if max_parallel is not None and not sweeps:
        raise UsageError("--max-parallel goes with --sweep")
    if idempotency_key is None and not dry_run:
        idempotency_key = _ci_key(spec_file, overrides, backend_text)
    idempotency_key = idempotency_key or None
    loaded = _SpecOnce(spec_file, overrides)
    backends = _backends_for(loaded, backend_text)
    if sweeps:
        if follow:
            raise UsageError("--follow streams one job; a sweep runs many", "use --wait, then `launch logs JOB`")
        _run_sweep(loaded, backends, sweeps, max_parallel=max_parallel, wait=wait_, dry_run=dry_run,
                   idempotency_key=idempotency_key, detach_on_interrupt=detach_on_interrupt, output=output)
        return
    if backends:  # an unknown backend is said before the spec is read, as before
        registry.backend_class(backends[0])
    spec = loaded.job()
    if dry_run:
        _, _, request, _ = runner.prepare(spec, backends[0], dry_run=True, idempotency_key=idempotency_key)
        document = registry.backend_class(backends[0]).dry_run_document(request) if output == "text" else None
        if output == "text":
            click.echo(f"# dry run: nothing submitted; {backends[0]} would run {request.operation}:", err=True)
        if document is None:
            _print_json(request.to_display())
        else:
            click.echo(document, nl=False)
        return
    store = _store()
    if follow or wait_:
        _signals_interrupt()
    submission = runner.submit_first(store, spec, backends, idempotency_key, on_skip=_say_skip)
    record = submission.record
    if output == "text":
        if submission.existing:
            click.echo(f"job {record.id} already exists for idempotency key {idempotency_key!r}; not submitted again")
        else:
            click.echo(f"submitted {record.id} to {record.backend}")
        if not (wait_ or follow):
            click.echo(f"  launch status {record.id}\n  launch logs -f {record.id}")
    if follow or wait_:
        record = _wait_or_follow(store, record, follow=follow, node=None, quiet=output == "json",
                                 cancel_on_interrupt=not detach_on_interrupt)
    if output == "json":
        _print_json({**record.to_json(), "existing": submission.existing})
    _ci_report(record)
    if follow or wait_:
        sys.exit(runner_exit(record))


def _ci_key(spec_file: str, overrides: tuple[str, ...], backend_text: str) -> str | None:
    import os

    from launcher import ci_env

    found = ci_env.default_idempotency_key(os.environ, spec_file=spec_file, overrides=overrides,
                                           backend=backend_text)
    if found is None:
        return None
    click.echo(f"idempotency key {found.key} (from {found.source}; --idempotency-key '' turns it off)", err=True)
    return found.key


def _ci_report(record: Any) -> None:
    import os

    from launcher import ci_env

    ci_env.write_github_outputs(os.environ, record, echo=click.echo)


class _SpecOnce:
    """The command's spec file, read and parsed on first use and then never again: every job the
    command builds (one, or one per sweep point) comes from the same parsed data."""

    def __init__(self, spec_file: str, overrides: tuple[str, ...]) -> None:
        self.spec_file, self.overrides = spec_file, overrides
        self._file: SpecFile | None = None
        self._job: JobSpec | None = None

    def file(self) -> SpecFile:
        if self._file is None:
            from launcher.spec import read_spec

            self._file = read_spec(self.spec_file, self.overrides)
        return self._file

    def job(self) -> JobSpec:
        """The spec without sweep parameters (validated once)."""
        if self._job is None:
            self._job = self.file().job()
        return self._job


def _backends_for(loaded: _SpecOnce, backend_text: str) -> list[str]:
    """`--backend` as the ordered list of backends to try; 'cheapest' asks the plan."""
    from launcher import plan

    if backend_text.strip() != "cheapest":
        return plan.failover_order(backend_text)
    rows = plan.plan(loaded.job(), live=False)
    chosen = plan.cheapest(rows)
    click.echo(f"cheapest configured backend that fits: {chosen.backend} ({chosen.instance_type} x {chosen.nodes}, "
               f"${chosen.hourly_usd:,.2f}/h at catalog prices of {chosen.price_as_of})", err=True)
    return [chosen.backend]


def _say_skip(name: str, exc: LaunchError) -> None:
    click.echo(f"{name}: no capacity ({exc.message}); trying the next backend", err=True)


class _Interrupted(KeyboardInterrupt):
    """SIGTERM (a CI cancelling the step) handled like Ctrl-C; keeps the signal for the exit code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _signals_interrupt() -> None:
    import signal

    def handler(signum: int, _frame: Any) -> None:
        raise _Interrupted(signum)

    signal.signal(signal.SIGTERM, handler)


def _exit_for_interrupt(exc: KeyboardInterrupt) -> int:
    return 128 + getattr(exc, "signum", 2)


def _run_sweep(loaded: _SpecOnce, backends: list[str], sweeps: tuple[str, ...], *,
               max_parallel: int | None, wait: bool, dry_run: bool, idempotency_key: str | None,
               detach_on_interrupt: bool, output: str) -> None:
    """Every point is checked before the first is submitted: a bad value fails the whole sweep
    with exit 2 and nothing launched."""
    import threading

    from launcher import runner, sweep
    from launcher.store import JobStore, open_store

    points = sweep.grid(sweep.parse_axes(sweeps))
    specs = sweep.point_specs(loaded.file(), points)
    if dry_run:
        requests = [runner.prepare(spec, backends[0], dry_run=True,
                                   idempotency_key=sweep.point_key(idempotency_key, params))[2].to_display()
                    for spec, params in zip(specs, points, strict=True)]
        if output == "text":
            click.echo(f"# dry run: nothing submitted; {len(points)} jobs on {backends[0]}:", err=True)
        _print_json(requests)
        return
    group = runner.new_job_id(f"{specs[0].name}-sweep")
    local = threading.local()

    def store() -> JobStore:  # one connection per thread: a connection's transactions are not thread-safe
        if not hasattr(local, "store"):
            local.store = open_store()
        return local.store

    def submit_one(params: dict[str, str]) -> Any:
        spec = specs[points.index(params)]
        return runner.submit_first(store(), spec, backends, sweep.point_key(idempotency_key, params), params=params,
                                   group_id=group, on_skip=_say_skip).record

    def is_done(result: Any) -> bool:
        result.record = runner.refresh(store(), result.record)
        return bool(result.record.state.is_terminal)

    say = (lambda text: click.echo(text, err=True)) if output == "text" else (lambda _text: None)
    say(f"sweep {group}: {len(points)} jobs" + (f", at most {max_parallel} at once" if max_parallel else ""))
    _signals_interrupt()  # the sweep stays in the foreground (waiting, or feeding --max-parallel)
    try:
        results = sweep.run(points, submit_one, is_done, max_parallel=max_parallel or len(points), wait=wait,
                            on_event=say)
    except KeyboardInterrupt as exc:
        main_store = _store()
        if not detach_on_interrupt:
            for record in main_store.list(group=group):
                if not record.state.is_terminal and record.handle is not None:
                    runner.cancel(main_store, record)
                    click.echo(f"cancelled {record.id}", err=True)
        else:
            click.echo(f"detached; the sweep's jobs keep running: launch list --group {group}", err=True)
        sys.exit(_exit_for_interrupt(exc))
    _report_sweep(group, results, output)
    sys.exit(_sweep_exit(results, waited=wait))


def _report_sweep(group: str, results: list[Any], output: str) -> None:
    from launcher.store import point_label

    rows = [{"params": r.params, "job_id": r.record.id if r.record else None,
             "state": r.record.state.value if r.record else "NOT SUBMITTED",
             "error": r.error.message if r.error else None} for r in results]
    if output == "json":
        _print_json({"group": group, "jobs": rows})
        return
    from launcher import display

    display.write(display.Table([("POINT", "JOB", "STATE")] + [
        (point_label(r["params"]), r["job_id"] or "-", r["state"] + (f": {r['error']}" if r["error"] else ""))
        for r in rows], state_column=2))
    click.echo(f"group {group}: launch list --group {group} / launch cancel --group {group}")


def _sweep_exit(results: list[Any], *, waited: bool) -> int:
    """Not submitted or failed -> that failure's code; with --wait, the worst job result."""
    from launcher.runner import exit_code_for

    errors = [r.error for r in results if r.error is not None]
    if errors:
        return errors[0].exit_code
    if not waited:
        return 0
    codes = {exit_code_for(r.record.state) for r in results}
    for code in (1, 4, 3):  # failed beats unknown beats cancelled
        if code in codes:
            return code
    return 0


def runner_exit(record: Any) -> int:
    from launcher.runner import exit_code_for

    return exit_code_for(record.state)


def _wait_or_follow(store: Any, record: Any, *, follow: bool, node: int | None, quiet: bool,
                    cancel_on_interrupt: bool = False) -> Any:
    from launcher import runner

    multi = int(record.spec.get("resources", {}).get("nodes", 1)) > 1 and node is None
    try:
        if follow:  # with -o json, stdout holds only the JSON result
            record = runner.follow(store, record, _printer(multi, sys.stderr if quiet else sys.stdout), node=node)
        else:
            record = runner.wait(store, record, on_change=None if quiet else _say_state)
    except KeyboardInterrupt as exc:
        if cancel_on_interrupt:
            _cancel_after_interrupt(store, record)
        else:
            click.echo(f"\ndetached; job {record.id} keeps running.\n"
                       f"  launch logs -f {record.id}\n  launch cancel {record.id}", err=True)
        sys.exit(_exit_for_interrupt(exc))
    if not quiet:
        _say_end(record, show_tail=not follow)
    return record


def _cancel_after_interrupt(store: Any, record: Any) -> None:
    """The CI step (or the user) gave up on the run: stop paying for it. A second interrupt
    while cancelling leaves it as it is, and says so."""
    from launcher import runner

    click.echo(f"\ninterrupted: cancelling job {record.id} (--detach-on-interrupt leaves it running)", err=True)
    try:
        record = runner.cancel(store, store.get(record.id) or record)
    except KeyboardInterrupt:
        click.echo(f"cancel interrupted; job {record.id} may still run: launch cancel {record.id}", err=True)
        return
    except LaunchError as exc:
        click.echo(f"could not cancel {record.id}: {exc}", err=True)
        return
    click.echo(f"job {record.id}: {record.state.value}", err=True)
    _ci_report(record)


def _printer(multi: bool, stream: Any) -> Any:
    """Writes log blocks as they come: one write per block, `[node N] ` before each line
    only when several nodes share the stream. Where the stream has a binary layer (stdout does),
    a block's bytes go there as the backend read them: never decoded and encoded again, so a
    log prints at the speed of `cat`, and byte for byte what the job wrote."""
    binary = getattr(stream, "buffer", None)

    def show_text(block: Any) -> None:
        if multi:
            prefix = f"[node {block.node}] "
            stream.write(prefix + block.text.replace("\n", "\n" + prefix) + "\n")
        else:
            stream.write(block.text + "\n")
        stream.flush()

    def show_bytes(block: Any) -> None:
        stream.flush()  # anything written as text before stays before
        if multi:
            prefix = b"[node %d] " % block.node
            binary.write(prefix + bytes(block.data).replace(b"\n", b"\n" + prefix) + b"\n")
        elif fd is not None:  # the block and its newline in one system call, no copy to join them
            binary.flush()
            _write_all(fd, [block.data, b"\n"])
        else:
            binary.write(block.data)
            binary.write(b"\n")
        binary.flush()

    fd = _real_fd(binary)
    return show_text if binary is None else show_bytes


def _real_fd(binary: Any) -> int | None:
    """The file descriptor under a binary stream, if it has one (a test's BytesIO has none)."""
    try:
        return binary.fileno() if binary is not None else None
    except (AttributeError, OSError, ValueError):
        return None


def _write_all(fd: int, parts: list[Any]) -> None:
    """os.writev until every byte is written (a pipe may take part of them)."""
    views = [memoryview(part).cast("B") for part in parts]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _say_state(record: Any) -> None:
    from launcher import display

    display.say_state(f"{record.id}: {record.state.value}", record.state.value)


def _say_end(record: Any, *, show_tail: bool = True) -> None:
    from launcher.durations import format_seconds

    took = ""
    if record.started_at and record.ended_at:
        took = f" after {format_seconds(record.ended_at - record.started_at)}"
    line = f"job {record.id} {record.state.value}{took}"
    if record.message:  # why it failed; what it made (a fine-tuned model's name)
        line += f": {record.message}"
    from launcher import display

    display.say_state(line, record.state.value)
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
@_job_argument
@_output
def status(job: str | None, output: str) -> None:
    """Show a job's state, refreshed from its backend (default: the newest job)."""
    from launcher import runner

    store = _store()
    record = runner.refresh(store, _job(store, job))
    if output == "json":  # with what was sent (secrets masked) and every state it was stored in
        _print_json({**record.to_json(), "request": store.request(record.id),
                     "history": [{"at": at, "state": state.value, "raw_state": raw}
                                 for at, state, raw in store.history(record.id)]})
        return
    from launcher import display

    display.write_status(record)
    if record.state.value == "FAILED":
        _show_tail(record)


@main.command()
@_job_argument
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the job ends.")
@click.option("--node", type=click.IntRange(min=0), default=None, help="Only this node (rank).")
@click.option("--tail", type=click.IntRange(min=0), default=None,
              help="Only the last N lines (of each node) first.")
def logs(job: str | None, follow: bool, node: int | None, tail: int | None) -> None:
    """Print a job's logs (all nodes, or --node N; default: the newest job)."""
    from launcher import runner

    store = _store()
    record = _job(store, job)
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


_group_option = click.option("--group", default=None, metavar="GROUP", shell_complete=_complete_from_store("group"),
                             help="A sweep group: its id or any unique prefix of it.")


@main.command()
@_job_argument
@_group_option
@_output
def cancel(job: str | None, group: str | None, output: str) -> None:
    """Cancel a job (default: the newest), or every unfinished job of a sweep with --group (safe to repeat)."""
    from launcher import runner

    if job is not None and group is not None:
        raise UsageError("give a JOB or --group GROUP, not both", "`launch list` shows both")
    store = _store()
    records = [_job(store, job)] if group is None else store.list(group=store.resolve_group(group))
    done = []
    for record in records:
        done.append(runner.cancel(store, record))
        if output == "text":
            click.echo(f"{done[-1].id}: {done[-1].state.value}")
    if output == "json":
        _print_json(done[0].to_json() if group is None else [r.to_json() for r in done])


@main.command(epilog=EXIT_CODES_HELP)
@_job_argument
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 4).")
@_output
def wait(job: str | None, timeout: float | None, output: str) -> None:
    """Wait for a job to end (default: the newest job); exit 0 succeeded, 1 failed, 3 cancelled."""
    from launcher import runner

    store = _store()
    record = _job(store, job)
    record = runner.wait(store, record, timeout_s=timeout, on_change=None if output == "json" else _say_state)
    if output == "json":
        _print_json(record.to_json())
    else:
        _say_end(record)
    _ci_report(record)
    sys.exit(runner.exit_code_for(record.state))


@main.command(name="list")
@click.option("-b", "--backend", default=None, help="Only jobs on this backend.")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES, case_sensitive=False),
              help="Only jobs in this state (repeatable).")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--all", "show_all", is_flag=True, help="No limit.")
@click.option("--refresh", is_flag=True, help="Ask every backend for the state of unfinished jobs.")
@click.option("--sync", is_flag=True, help="First ask the backends what they run and reconcile the history.")
@click.option("--mine", is_flag=True, help="Only jobs this user submitted (from any machine, in a shared store).")
@click.option("--user", default=None, metavar="USER", help="Only jobs USER submitted.")
@click.option("--ci", is_flag=True, help="Only jobs a CI run submitted.")
@_group_option
@_output
def list_(backend: str | None, states: tuple[str, ...], limit: int, show_all: bool, refresh: bool, sync: bool,
          mine: bool, user: str | None, ci: bool, group: str | None, output: str) -> None:
    """List jobs from the history (this machine's, or the team's shared store), newest first.

    Unfinished local jobs are refreshed on the spot; jobs on cloud backends show
    their last known state unless --refresh (one provider call per unfinished job).
    """
    list_jobs(backend=backend, states=states, limit=limit, show_all=show_all, refresh=refresh, sync=sync, mine=mine,
              user=user, ci=ci, group=group, output=output)


@main.group(name="store")
def store_group() -> None:
    """The job history's store: this machine's SQLite file, or a shared PostgreSQL (`store_url`)."""


@store_group.command()
@click.option("--from", "source", type=click.Path(dir_okay=False), default=None,
              help="The SQLite history to copy (default: this machine's, $LAUNCH_HOME/jobs.db).")
def migrate(source: str | None) -> None:
    """Copy a SQLite job history into the shared store that `store_url` names.

    Safe to repeat and to interrupt: each job is copied in its own transaction, and one the
    shared store has already (by id or idempotency key) is left as it is.
    """
    from pathlib import Path

    from launcher import config
    from launcher.store import Store, configured_url, open_store

    if configured_url() is None:
        raise UsageError("no shared store to migrate to: `store_url` is not set",
                         "set store_url = \"postgresql://...\" in config.toml (or LAUNCH_STORE_URL), then rerun")
    path = Path(source) if source else config.home() / "jobs.db"
    if not path.is_file():
        raise UsageError(f"{path}: no SQLite job history there", "give its path with --from")
    local, shared = Store(path), open_store()
    copied = present = 0
    try:
        for record in reversed(local.list()):  # oldest first: an interrupted copy resumes where it stopped
            if shared.import_record(record, local.request(record.id), local.history(record.id)):
                copied += 1
            else:
                present += 1
    finally:
        local.close()
        shared.close()
    click.echo(f"copied {copied} job(s) from {path}; {present} were there already")


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("-b", "--backend", default=None, metavar="NAME[,NAME...]|cheapest",
              help="Also prepare the job for this backend as a dry run would (settings, config.toml, render): "
                   "whatever `run --dry-run` refuses, this refuses.")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="As for run.")
@_output
def validate(spec_file: str, backend: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Check a spec and report every problem at once (exit 2 if any). Nothing is stored or sent."""
    from launcher import runner
    from launcher.errors import Problem, SpecError

    spec = None
    names: list[str] = []
    found: list[SpecError] = []
    loaded = _SpecOnce(spec_file, overrides)
    try:
        try:
            spec = loaded.job()
        except SpecError as exc:
            found.append(exc)
        data = _finetune_data(spec, found)
        if backend and (spec is not None or backend.strip() != "cheapest"):  # cheapest: asks the spec
            names = _backends_for(loaded, backend)
            found += runner.preflight(spec, names)
    except LaunchError as exc:
        if output == "text":
            raise
        _print_json({"file": spec_file, "ok": False, "problems": [
            Problem(spec_file, None, "", f"{exc.message}; {exc.hint}" if exc.hint else exc.message).to_json()]})
        sys.exit(exc.exit_code)
    problems = list(dict.fromkeys(p for exc in found for p in exc.problems))  # spec-wide ones once
    if output == "json":
        _print_json({"file": spec_file, "ok": not problems, "problems": [p.to_json() for p in problems]})
        if problems:
            sys.exit(EXIT_USAGE)
        return
    if problems:
        raise SpecError(problems, " and ".join(dict.fromkeys(exc.where for exc in found)))
    assert spec is not None
    checked = f"; ready for {', '.join(names)}" if names else ""
    if spec.finetune is not None:
        files = "".join(f"; {os.path.basename(r.file)}: {r.examples} examples, ~{r.tokens:,} tokens" for r in data)
        click.echo(f"{spec_file}: ok ({spec.name}, fine-tune of {spec.finetune.base_model} ({spec.finetune.method})"
                   f"{files})" + checked)
        return
    click.echo(f"{spec_file}: ok ({spec.name}, {spec.resources.nodes} node(s) x {spec.resources.accelerators})"
               + checked)


def _finetune_data(spec: Any, found: list[Any]) -> list[Any]:
    """A fine-tuning spec's local JSONL files checked line by line; the first bad line joins `found`."""
    if spec is None or spec.finetune is None:
        return []
    from launcher import finetune_data
    from launcher.errors import SpecError

    try:
        return finetune_data.reports(spec.finetune)
    except finetune_data.BadData as exc:
        found.append(SpecError([exc.problem]))
        return []


@main.command()
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("-b", "--backend", "names", multiple=True, help="Only these backends (repeatable; default: all).")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="As for run.")
@click.option("--no-live", is_flag=True, help="Do not ask providers for live capacity (Lambda Cloud).")
@click.option("--max-price", type=click.FloatRange(min=0, min_open=True), default=None, metavar="USD",
              help="Only what costs at most USD per hour for all nodes.")
@click.option("--region", default=None, help="Prices in this region only (a provider's own name, e.g. us-east-1).")
@_output
def plan(spec_file: str, names: tuple[str, ...], overrides: tuple[str, ...], no_live: bool, max_price: float | None,
         region: str | None, output: str) -> None:
    """Where SPEC_FILE could run: instance type, GPUs, price, cost for max_runtime, readiness.

    Backends that fit and are configured come first, cheapest first; the others say why
    not, and the last lines name the cheapest ready one. Prices are catalog list prices
    (launch catalog; refreshed ones from launch catalog --refresh win), with their as-of date.
    """
    from launcher import plan as planner
    from launcher.spec import load_spec

    spec = load_spec(spec_file, overrides)
    rows = planner.plan(spec, list(names) or None, live=not no_live, region=region, max_price=max_price)
    if output == "json":  # each row says whether it is the answer plan's last lines name
        ready, fitting = planner.cheapest_ready(rows), planner.cheapest_fitting(rows)
        answer = {id(ready): "cheapest ready"} if ready else ({id(fitting): "cheapest that fits"} if fitting else {})
        _print_json([{**row.to_json(), "answer": answer.get(id(row))} for row in rows])
        return
    from launcher import display

    display.write(display.plan_table(rows, spec))


@main.command()
@click.option("-b", "--backend", default=None, help="Only this backend's rows.")
@click.option("-a", "--accelerator", default=None, metavar="TYPE[:COUNT]",
              help="Only this accelerator, e.g. H100:8, or a TPU slice: TPU-v5e:8 (also TPU-v2/v3/v4/v5p/v6e).")
@click.option("--refresh", is_flag=True,
              help="First update the price cache from the providers' price lists (-b: that backend's only).")
@_output
def catalog(backend: str | None, accelerator: str | None, refresh: bool, output: str) -> None:
    """The instance types and list prices launch knows, with source and as-of date.

    TPU slices are written TPU-v5e:8 (Cloud TPU's v5litepod-8), TPU-v5p:16, TPU-v6e:8, TPU-v4:8,
    TPU-v2:8, TPU-v3:8: the count is the slice's size as Cloud TPU names it (chips for v5e and v6e,
    TensorCores for the others); a TPU row's price is for the whole slice.

    --refresh reads current prices where a provider publishes them: the AWS Price List
    (SageMaker) and the Azure Retail Prices API need no account; Lambda Cloud's API needs
    LAMBDA_API_KEY. Refreshed prices are kept under LAUNCH_HOME/prices and win over the
    shipped ones; a price list that fails leaves the previous prices in place (exit 1).
    """
    from launcher import accelerators
    from launcher import catalog as known

    wanted = count = None
    if accelerator:  # checked before any refresh: bad input costs no download
        try:
            kind, _, count = accelerator.partition(":")
            wanted = accelerators.canonical_name(kind)
        except ValueError as exc:
            raise UsageError(f"--accelerator {accelerator!r}: {exc}") from None
    failed = _refresh_prices(backend) if refresh else False
    rows = list(known.all_priced_offers())
    if backend:
        _check_catalog_backend(backend, {o.backend for o in rows})
        rows = [o for o in rows if o.backend == backend]
    if wanted:
        rows = [o for o in rows if o.accelerator == wanted and (not count or str(o.count) == count.strip())]
    if output == "json":
        import dataclasses

        _print_json([{**dataclasses.asdict(o), "estimate": o.estimate, "old": o.stale()} for o in rows])
    else:
        from launcher import display

        display.write(display.catalog_table(rows) if rows else "no catalog rows match")
    if failed:
        raise SystemExit(1)


def _refresh_prices(backend: str | None) -> bool:
    """`catalog --refresh`: progress and one line per backend on stderr; exit 1 when a price list
    failed (its previous prices stay), after the others were refreshed and the table shown."""
    from launcher import catalog as known
    from launcher import prices, registry

    names = [n for n in registry.names() if known.backend_offers(n)]
    if backend:
        _check_catalog_backend(backend, set(names))
        names = [backend]
    outcomes, failed = prices.refresh(names, lambda line: click.echo(line, err=True))
    for name, what in outcomes:
        click.echo(f"{name}: {what}", err=True)
    return bool(failed)


def _check_catalog_backend(name: str, in_catalog: set[str]) -> None:
    """A name the catalog has no rows for is either a backend without prices (local, ssh: say so)
    or a typo (say which backends exist); both exit 2 instead of printing nothing."""
    from launcher import registry

    if name in in_catalog:
        return
    if name in registry.names():
        raise UsageError(f"backend {name!r} has no catalog rows: it runs on machines you provide",
                         f"the catalog covers {', '.join(sorted(in_catalog))}")
    raise UsageError(f"no backend {name!r}", f"backends: {', '.join(sorted(set(registry.names()) | in_catalog))}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the job spec (for editor completion)."""
    from launcher.spec import json_schema

    _print_json(json_schema())


@main.command()
@_output
def backends(output: str) -> None:
    """List the backends, whether their SDK is installed and credentials/config found.

    A backend whose SDK is missing shows the pip line that installs it for this installation.
    """
    from launcher import registry, runner
    from launcher.display import columns

    rows = []
    for name in registry.names():
        try:
            ready = runner.readiness(name)
            row = {"name": name, "sdk_installed": ready.sdk_installed, "configured": ready.configured,
                   "detail": ready.detail, "hint": ready.hint}
        except LaunchError as exc:
            row = {"name": name, "sdk_installed": False, "configured": False, "detail": exc.message,
                   "hint": exc.hint}
        rows.append(row)
    if output == "json":
        _print_json(rows)
        return
    lines = [("BACKEND", "SDK", "CONFIGURED", "READY", "DETAIL")]
    for row in rows:
        sdk, configured = row["sdk_installed"], row["sdk_installed"] and row["configured"]
        lines.append((row["name"], "yes" if sdk else "missing", "yes" if configured else "-" if not sdk else "no",
                      "ready" if configured else "not ready", row["detail"]))
        if row["hint"]:
            lines.append(("", "", "", "", f"{'install' if not sdk else 'hint'}: {row['hint']}"))
    click.echo(columns(lines))


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--host", default=None, metavar="ADDRESS",
              help="Listen there instead of 127.0.0.1; every request then needs the token printed with the URL.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a web browser.")
def ui(port: int, host: str | None, open_browser: bool) -> None:
    """A web dashboard of the job history: every job on every backend, live logs, charts (extra [ui])."""
    from launcher import ui as dashboard

    dashboard.main(host=host, port=port, open_browser=open_browser)


def _global_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`launch status JOB -v` means what `launch -v status JOB` does."""
    if not value or ctx.resilient_parsing:
        return
    from launcher import logs

    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if param.name == "debug":
        root.obj["debug"] = True
    logs.set_verbose(True)


for _command in [*main.commands.values(), *store_group.commands.values()]:  # the flags after a name too
    _command.params.extend([
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=_global_flag,
                     help="Show tracebacks for errors (also before the command)."),
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_global_flag,
                     help="Say more about retries and progress (also before the command)."),
    ])


def run_main() -> None:
    """Console-script entry: click's own usage errors already exit 2."""
    try:
        main(prog_name="launch")
    except LaunchError as exc:  # raised outside a command (e.g. while parsing)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


assert EXIT_USAGE == 2 and EXIT_UNREACHABLE == 4
