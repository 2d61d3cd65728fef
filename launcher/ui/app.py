"""The dashboard's routes: thin, over the store, the runner and the planner the CLI uses.

Pages are server-rendered Jinja2 templates with autoescaping on: a job name, message or log line
holding `<script>` is shown as text. Data for charts travels as JSON (fetched, or a `tojson` block the
scripts read), never as inline script: the Content-Security-Policy allows scripts from this server only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from launcher.backend import JobState
from launcher.errors import LaunchError
from launcher.store import JobRecord, JobStore
from launcher.ui import logstream, metrics, views
from launcher.ui.security import Access, Guard

HERE = Path(__file__).parent
DEFAULT_LIMIT = 500  # rows on the jobs page unless ?limit=all
PLAN_PICKS = 30  # recent jobs whose spec the plan page offers
STATES_SLACK_S = 5.0  # a change stored while the previous answer was being read is not missed
MAX_BODY = 1 << 20  # a pasted spec or a cancel form: far less than this


class Stores:
    """One store connection per server thread (a SQLite or psycopg connection is not shared between
    threads mid-transaction), all opened by the CLI's own `open_store`."""

    def __init__(self, opener: Callable[[], JobStore]) -> None:
        self.opener = opener
        self._local = threading.local()
        self._opened: list[JobStore] = []
        self._lock = threading.Lock()

    def get(self) -> JobStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self.opener()
            with self._lock:
                self._opened.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._opened:
                store.close()
            self._opened.clear()


def create_app(opener: Callable[[], JobStore], access: Access | None = None) -> Any:
    """The ASGI app: the routes behind the Guard (token, Host and CSRF checks, security headers)."""
    access = access or Access()
    stores = Stores(opener)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    environment.filters["part"] = lambda value: quote(str(value), safe="")  # one URL path segment
    templates = Jinja2Templates(env=environment)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"csrf": access.csrf, "nav": name, **context},
                                          status_code=status)

    def problem(request: Request, status: int, message: str) -> Response:
        return page(request, "problem.html", status, message=message)

    def job_or_404(request: Request) -> JobRecord | Response:
        record = stores.get().get(request.path_params["job_id"])
        return record if record is not None else problem(request, 404, "no such job in this history")

    def listed(request: Request, *, with_state: bool = True) -> tuple[list[JobRecord], views.Filters]:
        """The jobs the query's filters select, newest first; unfinished local jobs refreshed as `list` does."""
        filters = views.Filters.from_query(request.query_params)
        store = stores.get()
        records = store.list(backend=filters.backend or None, group=filters.group or None)
        if any(r.needs_refresh(all_backends=False) for r in records):
            from launcher import runner

            records = runner.refresh_active(store, records, all_backends=False)
        if not with_state:
            filters = views.Filters(backend=filters.backend, group=filters.group, text=filters.text)
        return [r for r in records if filters.matches(r)], filters

    def jobs(request: Request) -> Response:
        from launcher import registry

        records, filters = listed(request)
        limit = None if request.query_params.get("limit") == "all" else DEFAULT_LIMIT
        shown = records[:limit]
        backends = sorted(set(registry.names()) | {r.backend for r in records})
        states_query = {k: v for k, v in request.query_params.items() if k in ("backend", "group", "q")}
        return page(request, "jobs.html", blocks=views.blocks(shown), filters=filters, total=len(records),
                    shown=len(shown), backends=backends, states=[s.value for s in JobState],
                    groups=stores.get().group_ids(limit=50), states_query=states_query)

    def states(request: Request) -> Response:
        """The live refresh: the jobs the page's filters (bar state) select, by id; with `since` (the `now`
        of the previous answer), only those unfinished or changed since then, so a page of a thousand
        ended jobs polls a few rows, not all of them."""
        now = time.time()
        try:
            since = float(request.query_params.get("since", ""))
        except ValueError:
            since = None
        if "id" in request.query_params:
            record = stores.get().get(request.query_params["id"])
            records = [record] if record is not None else []
            if records and records[0].needs_refresh(all_backends=False):
                from launcher import runner

                records = runner.refresh_active(stores.get(), records, all_backends=False)
        else:
            records, _ = listed(request, with_state=False)
        if since is not None:
            records = [r for r in records if not r.state.is_terminal or r.updated_at >= since - STATES_SLACK_S]
        return JSONResponse({"now": now, "jobs": {r.id: views.row(r, now) for r in records}})

    def job(request: Request) -> Response:
        record = job_or_404(request)
        if isinstance(record, Response):
            return record
        store = stores.get()
        redact = views.Redactor(record)
        sent = store.request(record.id)
        return page(request, "job.html", job=views.row(record), record=record, redact=redact,
                    spec=redact.json(record.spec), request_json=redact.json(sent) if sent is not None else None,
                    history=[(views.when(at), state.value, raw) for at, state, raw in store.history(record.id)],
                    console=views.console_url(record), nodes=range(views.nodes(record)),
                    message=redact(record.message or ""), can_cancel=not record.state.is_terminal)

    async def logs(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        job_id = request.path_params["job_id"]
        record = await run_in_threadpool(lambda: stores.get().get(job_id))  # that thread's own connection
        if record is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        try:
            cursor = logstream.decode_cursor(request.headers.get("last-event-id"))
        except LaunchError as exc:
            return JSONResponse({"error": exc.message}, status_code=400)
        body = logstream.stream(stores.opener, record, cursor, views.Redactor(record))
        return StreamingResponse(body, media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    def job_metrics(request: Request) -> Response:
        """{metric: [[step, value], ...]} from node 0's logs (read through, as `launch logs` does): the rank
        that reports metrics in most training scripts, and one curve per metric rather than one per node."""
        record = job_or_404(request)
        if isinstance(record, Response):
            return JSONResponse({"error": "no such job"}, status_code=404)
        from launcher import runner

        redact = views.Redactor(record)
        try:
            lines = (text for block in runner.read_logs(record, node=0) for text in redact(block.text).split("\n"))
            found = metrics.series(lines)
        except LaunchError as exc:
            return JSONResponse({"error": exc.message, "series": {}})
        return JSONResponse({"series": found})

    async def cancel(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        form = await _form(request)
        if not access.csrf_ok(form.get("csrf") or request.headers.get("x-csrf-token")):
            return problem(request, 403, "the form's CSRF token is missing or stale: reload the page and try again")
        job_id = request.path_params["job_id"]

        def run() -> str | None:
            from launcher import runner

            store = stores.get()
            record = store.get(job_id)
            if record is None:
                return "no such job in this history"
            try:
                runner.cancel(store, record)
            except LaunchError as exc:
                return exc.message + (f" ({exc.hint})" if exc.hint else "")
            return None

        refused = await run_in_threadpool(run)
        if refused is not None:
            return problem(request, 404 if refused.startswith("no such job") else 409, refused)
        return RedirectResponse(request.url_for("job", job_id=job_id), status_code=303)

    def sweep(request: Request) -> Response:
        group = request.query_params.get("group", "")  # a query value: a group id may hold any character
        records = stores.get().list(group=group) if group else []
        if not records:
            return problem(request, 404, "no sweep with this group id in this history")
        return page(request, "sweep.html", group=group, grid=views.sweep_grid(records),
                    counts={s: sum(r.state.value == s for r in records) for s in sorted({r.state.value
                                                                                        for r in records})})

    def usage(request: Request) -> Response:
        return page(request, "usage.html", data=views.usage(stores.get().list()))

    async def plan_page(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        form = await _form(request) if request.method == "POST" else None
        if form is not None and not access.csrf_ok(form.get("csrf")):
            return problem(request, 403, "the form's CSRF token is missing or stale: reload the page and try again")
        return await run_in_threadpool(_plan, request, form.get("spec", "") if form is not None else None)

    def _plan(request: Request, text: str | None) -> Response:
        store = stores.get()
        newest: dict[str, JobRecord] = {}  # each name's newest job, newest first
        for found in store.list(limit=200):
            newest.setdefault(found.name, found)
        picks = list(newest.values())[:PLAN_PICKS]
        if text is None:
            picked = store.get(request.query_params.get("job", ""))
            text = _spec_text(picked) if picked is not None else ""
            return page(request, "plan.html", text=text, picks=picks, rows=None, errors=[], chart=None)
        rows, errors = _plan_rows(text)
        chart = None
        if rows:
            priced = [r for r in rows if r.fits and r.hourly_usd is not None]
            chart = {"labels": [f"{r.backend} {r.instance_type or ''}".strip() for r in priced],
                     "hourly": [r.hourly_usd for r in priced],
                     "total": [r.est_cost_usd for r in priced]}
        return page(request, "plan.html", text=text, picks=picks, rows=rows, errors=errors, chart=chart)

    routes = [
        Route("/", jobs, name="jobs"),
        Route("/api/states", states),
        Route("/jobs/{job_id}", job, name="job"),
        Route("/jobs/{job_id}/logs", logs),
        Route("/jobs/{job_id}/metrics", job_metrics),
        Route("/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/sweep", sweep, name="sweep"),
        Route("/usage", usage, name="usage"),
        Route("/plan", plan_page, methods=["GET", "POST"], name="plan"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        stores.close()

    app = Starlette(routes=routes, lifespan=lifespan, max_body_size=MAX_BODY)
    return Guard(app, access)


async def _form(request: Request) -> dict[str, str]:
    """A posted form (the pages' forms are URL-encoded; multipart is not needed, nor accepted)."""
    from urllib.parse import parse_qsl

    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def _spec_text(record: JobRecord) -> str:
    """A stored spec as YAML for the plan form (names of secrets only, as the store keeps them)."""
    import yaml

    return yaml.safe_dump(record.spec, sort_keys=False)


def _plan_rows(text: str) -> tuple[list[Any] | None, list[str]]:
    """`launch plan`'s rows for a pasted spec (no live capacity calls), or the spec's problems."""
    from launcher import plan
    from launcher.errors import SpecError
    from launcher.spec import parse_spec

    if not text.strip():
        return None, ["paste a spec, or pick one of the recent jobs' specs"]
    try:
        spec = parse_spec(text, "the pasted spec", base_dir=Path.cwd())
        return plan.plan(spec, live=False), []
    except SpecError as exc:
        return None, [str(p) for p in exc.problems]
    except LaunchError as exc:
        return None, [str(exc)]
