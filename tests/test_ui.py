"""`launch ui` over HTTP: every route against a history of 1,000+ jobs on every backend (Starlette's
TestClient, in process), the safety rules (token, Host, CSRF, headers, escaping, secrets), the log stream's
resume, and the command itself (a real server on port 0, the missing extra, start-up imports).
The browser scenario is tests/test_ui_browser.py."""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_ui_world import HOSTILE_HTML, SWEEP, SWEEP_AXES, T0, filled_store, record

from launcher import registry
from launcher.backend import JobState, Status
from launcher.store import Store
from launcher.ui import metrics, views
from launcher.ui.app import create_app
from launcher.ui.security import POLICY, Access

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-value-<b>-\"q\""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    return filled_store(tmp_path_factory.mktemp("ui") / "jobs.db")


@pytest.fixture
def client(world: tuple[Path, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("LAUNCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UI_TEST_SECRET", SECRET)
    with TestClient(create_app(lambda: Store(world[0]), Access())) as test_client:
        test_client.get("/")  # the session cookie a page hands out
        yield test_client


class Tags(html.parser.HTMLParser):
    """Every start tag with its attributes: what markup a page really holds."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(text)
    return parser.tags


def assert_inert(text: str) -> None:
    """No markup but the templates' own: scripts only from /static or JSON data blocks, no event
    handler attributes, no tag a hostile value would bring, no javascript: link."""
    for tag, attrs in tags(text):
        allowed = tag == "textarea" and attrs.get("name") == "spec"  # the plan form's own
        assert allowed or tag not in ("img", "svg", "iframe", "style", "textarea"), (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/") or attrs.get("type") == "application/json", attrs
        assert not (attrs.get("href") or "").lower().startswith("javascript"), attrs
    assert "<script>alert" not in text and "<img" not in text and "<svg" not in text and "<iframe" not in text


def job_rows(text: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in tags(text) if tag == "tr" and "data-job-id" in attrs]


# -- the jobs page -------------------------------------------------------------------------------------------


def test_jobs_page_shows_every_job_on_every_backend_newest_first(client: TestClient, world: tuple[Path, list]) -> None:
    page = client.get("/?limit=all")
    assert page.status_code == 200
    rows = job_rows(page.text)
    everything = Store(world[0]).list()
    assert len(rows) == len(everything) == len(world[1])
    assert {r.backend for r in everything} == set(registry.names())
    for name in registry.names():
        assert f'<td class="backend">{name}</td>' in page.text
    # newest first, a sweep's jobs together where its newest one would be
    created = {r.id: r.created_at for r in everything}
    ids = [r["data-job-id"] for r in rows]
    sweep = [i for i, r in enumerate(everything) if r.group_id == SWEEP]
    plain = [i for i in ids if i not in {everything[k].id for k in sweep}]
    assert plain == sorted(plain, key=lambda i: -created[i]) and len(plain) == len(ids) - len(sweep)
    at = ids.index(everything[sweep[0]].id)
    assert sorted(ids[at:at + len(sweep)]) == sorted(everything[k].id for k in sweep)
    assert f"{len(everything)} of {len(everything)} jobs" in page.text
    default = client.get("/")
    assert len(job_rows(default.text)) == 500 and f"500 of {len(everything)} jobs" in default.text


def test_a_row_says_shape_start_duration_cost_and_sweep(client: TestClient, world: tuple[Path, list]) -> None:
    job = next(r for r in world[1] if r.state is JobState.SUCCEEDED and r.backend == "sagemaker" and r.group_id)
    page = client.get("/", params={"q": job.id})
    rows = job_rows(page.text)
    assert [r["data-job-id"] for r in rows] == [job.id]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page.text.split(f'data-job-id="{job.id}"')[1].split("</tr>")[0], re.S)
    assert cells[1:] == ["lr=" + job.params["lr"] + " batch=" + job.params["batch"], "sagemaker", "SUCCEEDED",
                         "2 x H100:8", views.when(job.started_at), "1h", "$100.00", SWEEP]


@pytest.mark.parametrize("query", [{"state": "FAILED"}, {"backend": "vertex"}, {"state": "running", "backend": "ssh"},
                                   {"group": SWEEP}, {"q": "WHISPER"}, {"q": "lr=3e-4"}, {"state": "NOPE"}])
def test_filters_select_what_the_store_holds(client: TestClient, world: tuple[Path, list], query: dict) -> None:
    filters = views.Filters.from_query(query)
    expected = [r.id for r in Store(world[0]).list(backend=filters.backend or None, group=filters.group or None)
                if filters.matches(r)]
    page = client.get("/", params={**query, "limit": "all"})
    shown = [r["data-job-id"] for r in job_rows(page.text)]
    assert sorted(shown) == sorted(expected) and expected
    if "state" in query and filters.state:
        assert {r["data-state"] for r in job_rows(page.text)} == {filters.state}
    assert len(expected) < len(world[1]) or query == {"state": "NOPE"}


def test_a_sweep_is_grouped_with_its_point_values(client: TestClient) -> None:
    page = client.get("/", params={"group": SWEEP})
    block = page.text.split('<tbody class="sweep">')[1].split("</tbody>")[0]
    assert f'href="/sweep?group={SWEEP}"' in block and "6 jobs over lr, batch" in block
    points = re.findall(r'<td class="point">(.*?)</td>', block)
    assert sorted(points) == sorted(f"lr={lr} batch={b}" for lr in SWEEP_AXES["lr"] for b in SWEEP_AXES["batch"])


def test_the_sweep_page_is_a_grid_coloured_by_state(client: TestClient) -> None:
    page = client.get("/sweep", params={"group": SWEEP})
    assert page.status_code == 200
    grid = page.text.split('id="grid"')[1].split("</table>")[0]
    assert re.findall(r"<th>([^<]*)</th>", grid) == ["lr \\ batch", "16", "32", "64", "1e-4", "3e-4"]
    for lr in SWEEP_AXES["lr"]:
        row = grid.split(f"<th>{lr}</th>")[1].split("</tr>")[0]
        assert re.findall(r'class="cell" data-job-id="[^"]+" data-state="(\w+)"', row) == \
            ["SUCCEEDED", "SUCCEEDED", "RUNNING"]
    assert ">2 RUNNING<" in page.text and ">4 SUCCEEDED<" in page.text
    assert client.get("/sweep", params={"group": "nope"}).status_code == 404


def test_states_api_gives_the_live_states(client: TestClient, world: tuple[Path, list]) -> None:
    answer = client.get("/api/states", params={"group": SWEEP}).json()
    got = answer["jobs"]
    assert sorted(got) == sorted(r.id for r in world[1] if r.group_id == SWEEP)
    one = next(iter(got.values()))
    assert set(one) == {"id", "name", "backend", "state", "shape", "started", "duration", "cost", "group", "point",
                        "terminal"}
    job = next(r for r in world[1] if r.state.is_terminal)
    assert client.get("/api/states", params={"id": job.id}).json()["jobs"] == \
        {job.id: views.row(Store(world[0]).get(job.id))}
    assert client.get("/api/states", params={"id": "nope"}).json()["jobs"] == {}


def test_later_state_polls_carry_only_what_is_unfinished_or_changed(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.db")
    running, ended, ends_now = (record(i, "vertex", state) for i, state in
                                enumerate([JobState.RUNNING, JobState.SUCCEEDED, JobState.RUNNING]))
    for job in (running, ended, ends_now):
        store.import_record(job, None, [])
    with TestClient(create_app(lambda: Store(tmp_path / "jobs.db"), Access())) as client:
        first = client.get("/api/states").json()
        assert sorted(first["jobs"]) == sorted(j.id for j in (running, ended, ends_now))
        later = client.get("/api/states", params={"since": first["now"] + 60}).json()["jobs"]
        assert sorted(later) == sorted([running.id, ends_now.id])  # the ended one is not sent again
        store.set_status(ends_now.id, Status(JobState.SUCCEEDED, "Succeeded"))
        changed = client.get("/api/states", params={"since": first["now"]}).json()["jobs"]
        assert {i: r["state"] for i, r in changed.items()} == {running.id: "RUNNING", ends_now.id: "SUCCEEDED"}
    store.close()


# -- a job's page --------------------------------------------------------------------------------------------


def test_job_page_shows_spec_request_history_and_console(client: TestClient, world: tuple[Path, list]) -> None:
    job = next(r for r in world[1] if r.backend == "sagemaker" and r.state is JobState.RUNNING)
    store = Store(world[0])
    store.set_status(job.id, Status(JobState.SUCCEEDED, "Completed", started_at=job.started_at,
                                    ended_at=job.started_at + 60, url=job.url))
    page = client.get(f"/jobs/{job.id}")
    assert page.status_code == 200
    assert json.loads(html_unescape(page.text.split('id="spec">')[1].split("</pre>")[0])) == job.spec
    assert json.loads(html_unescape(page.text.split('id="request">')[1].split("</pre>")[0])) == \
        {"payload": {"env": {"UI_TEST_SECRET": "****"}}}
    history = page.text.split('id="history"')[1].split("</table>")[0]
    assert re.findall(r'<td class="state">(\w+)</td>', history) == ["RUNNING", "SUCCEEDED"]
    assert 'href="https://console.example/sagemaker/' in page.text and 'rel="noopener noreferrer"' in page.text
    assert 'id="cancel"' not in page.text  # it has ended: nothing to cancel
    assert SECRET not in page.text and html_escape(SECRET) not in page.text


def test_a_running_job_has_a_cancel_form_with_the_csrf_token(client: TestClient, world: tuple[Path, list]) -> None:
    job = next(r for r in world[1] if r.backend == "vertex" and r.state is JobState.RUNNING)
    page = client.get(f"/jobs/{job.id}")
    form = [attrs for tag, attrs in tags(page.text) if tag == "form" and attrs.get("id") == "cancel"]
    assert form and form[0]["method"] == "post" and form[0]["data-confirm"].startswith("Cancel job")
    assert f'name="csrf" value="{Access(token="t").csrf}"' not in page.text  # per server, not a constant
    assert re.search(r'name="csrf" value="[0-9a-f]{64}"', page.text)


def test_unknown_job_is_404(client: TestClient) -> None:
    assert client.get("/jobs/no-such-job").status_code == 404
    assert client.get("/jobs/no-such-job/logs").status_code == 404
    assert client.get("/jobs/no-such-job/metrics").status_code == 404


def test_a_console_url_that_is_not_http_is_no_link(client: TestClient, world: tuple[Path, list]) -> None:
    job = next(r for r in world[1] if r.url == "javascript:alert(4)")
    page = client.get(f"/jobs/{job.id}")
    assert 'id="console"' not in page.text and "not an http(s) link" in page.text


# -- pictures and the plan -----------------------------------------------------------------------------------


def test_usage_sums_gpu_hours_and_cost_per_backend_per_day() -> None:
    day = 86400.0
    records = [record(0, "vertex", JobState.SUCCEEDED, created=T0), record(1, "vertex", JobState.FAILED, created=T0),
               record(2, "ssh", JobState.SUCCEEDED, created=T0 + day), record(3, "ssh", JobState.PENDING, created=T0),
               record(4, "local", JobState.SUCCEEDED, created=T0, spec={"resources": {"accelerators": "cpu"}})]
    got = views.usage(records)
    assert got["days"] == ["2026-09-21", "2026-09-22"]
    # each ran 1 h on 2 nodes x 8 GPUs; $100 for 4 h -> $25 for the hour it ran
    assert got["backends"] == {"vertex": {"gpu_hours": [32.0, 0.0], "cost": [50.0, 0.0]},
                               "ssh": {"gpu_hours": [0.0, 16.0], "cost": [0.0, 25.0]},
                               "local": {"gpu_hours": [0.0, 0.0], "cost": [0.0, 0.0]}}


def test_usage_page_carries_its_data_as_json(client: TestClient, world: tuple[Path, list]) -> None:
    page = client.get("/usage")
    shown = json.loads(page.text.split('id="usage-data">')[1].split("</script>")[0])
    expected = views.usage(Store(world[0]).list())  # running jobs have run a little longer since
    assert shown["days"] == expected["days"] and shown["backends"].keys() == expected["backends"].keys()
    for name, sums in expected["backends"].items():
        assert shown["backends"][name]["cost"] == pytest.approx(sums["cost"], rel=1e-3)
        assert shown["backends"][name]["gpu_hours"] == pytest.approx(sums["gpu_hours"], rel=1e-3)
    assert '<canvas id="gpu-hours-chart">' in page.text and '<canvas id="cost-chart">' in page.text
    assert '<script src="/static/chart.umd.min.js" defer>' in page.text


def test_plan_page_shows_the_planners_rows_and_chart(client: TestClient, world: tuple[Path, list]) -> None:
    from launcher import plan
    from launcher.spec import parse_spec

    job = world[1][0]
    form = client.get("/plan", params={"job": job.id})
    assert "accelerators: H100:8" in form.text
    csrf = re.search(r'name="csrf" value="(\w+)"', form.text).group(1)
    text = "name: p\nrun: python t.py\nresources:\n  accelerators: H100:8\nmax_runtime: 2h\n"
    page = client.post("/plan", data={"spec": text, "csrf": csrf})
    assert page.status_code == 200
    rows = plan.plan(parse_spec(text, "x", base_dir=Path.cwd()), live=False)
    shown = re.findall(r'<tr class="(fits|no-fit)">\s*<td>([^<]+)</td>', page.text)
    assert [name for _, name in shown] == [r.backend for r in rows]
    chart = json.loads(page.text.split('id="plan-data">')[1].split("</script>")[0])
    priced = [r for r in rows if r.fits and r.hourly_usd is not None]
    assert chart["hourly"] == [r.hourly_usd for r in priced] and priced


def test_plan_says_what_is_wrong_with_a_pasted_spec(client: TestClient) -> None:
    csrf = re.search(r'name="csrf" value="(\w+)"', client.get("/plan").text).group(1)
    page = client.post("/plan", data={"spec": "name: p\nrun: x\nresources:\n  accelerators: H900\n", "csrf": csrf})
    assert page.status_code == 200 and "the pasted spec:4: resources.accelerators" in html_unescape(page.text)
    assert client.post("/plan", data={"spec": "name: p"}).status_code == 403  # no CSRF token


@pytest.mark.parametrize(("line", "step", "values"), [
    ("step=10 loss=0.31 lr=3e-4", 10.0, {"loss": 0.31, "lr": 3e-4}),
    ("epoch 3: train_loss=0.5, acc: 0.9", None, {"train_loss": 0.5, "acc": 0.9}),
    ("metrics step 3: train_loss=0.25 train_mean_token_accuracy=0.8", 3.0,
     {"train_loss": 0.25, "train_mean_token_accuracy": 0.8}),
    ('{"step": 7, "loss": 1.5, "tag": "x", "ok": true}', 7.0, {"loss": 1.5}),
    ('{"loss": NaN}', None, {}), ("no numbers here", None, {}), ("loss=inf", None, {}),
    ("path=/a/b size=3x", None, {}), ("2026-12-01 10:00:01 INFO iter 40 loss=2.0", 40.0, {"loss": 2.0}),
])
def test_metric_lines_are_read(line: str, step: float | None, values: dict) -> None:
    assert metrics.parse_line(line) == (step, values)


def test_metric_series_number_steps_when_lines_have_none() -> None:
    got = metrics.series(["loss=3", "noise", "loss=2 acc=0.5", '{"loss": 1}'])
    assert got == {"loss": [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)], "acc": [(1.0, 0.5)]}
    many = metrics.series([" ".join(f"m{i}={i}" for i in range(40))])
    assert len(many) == metrics.MAX_SERIES


# -- safety --------------------------------------------------------------------------------------------------


def test_hostile_names_messages_and_values_show_as_text(client: TestClient, world: tuple[Path, list]) -> None:
    hostile = [r for r in world[1] if r.name in HOSTILE_HTML]
    pages = [client.get("/", params={"backend": "vertex", "state": "FAILED", "limit": "all"}).text]
    for job in hostile:
        pages.append(client.get(f"/jobs/{job.id}").text)
        sweep = client.get("/sweep", params={"group": job.group_id})
        assert sweep.status_code == 200, job.group_id
        pages.append(sweep.text)
    csrf = re.search(r'name="csrf" value="(\w+)"', client.get("/plan").text).group(1)
    for value in HOSTILE_HTML:
        text = f"name: x\nrun: {json.dumps(value)}\nnope: {json.dumps(value)}\n"
        pages.append(client.post("/plan", data={"spec": text, "csrf": csrf}).text)
        pages.append(client.get("/", params={"q": value}).text)
    for text in pages:
        assert_inert(text)
    listing = pages[0]
    for value in HOSTILE_HTML:
        assert html_escape(value) in listing or html_escape(value.split("\n")[0]) in listing, value


def test_secret_values_printed_or_stored_are_masked(world: tuple[Path, list]) -> None:
    job = record(0, "local", JobState.FAILED, message=f"token {SECRET} leaked")
    redact = views.Redactor(job, {"UI_TEST_SECRET": SECRET})
    assert redact(job.message) == "token **** leaked"
    assert SECRET not in redact.json({"a": SECRET}) and json.dumps(SECRET)[1:-1] not in redact.json({"a": SECRET})
    assert views.Redactor(job, {"UI_TEST_SECRET": "ab"})("ab") == "ab"  # too short to mask safely


def test_every_response_carries_the_security_headers(client: TestClient, world: tuple[Path, list]) -> None:
    job = world[1][0]
    for url in ("/", f"/jobs/{job.id}", "/static/app.js", "/api/states?id=x", "/usage", "/plan", "/nope"):
        response = client.get(url)
        assert response.headers["content-security-policy"] == POLICY, url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY" and response.headers["referrer-policy"] == "same-origin"
    assert "default-src 'self'" in POLICY
    assert client.get("/").headers["cache-control"] == "no-store"


def test_with_a_host_every_request_needs_the_token(world: tuple[Path, list]) -> None:
    access = Access(token_required=True)
    with TestClient(create_app(lambda: Store(world[0]), access), follow_redirects=False) as anonymous:
        for url in ("/", "/static/app.js", "/api/states", f"/jobs/{world[1][0].id}", "/usage"):
            assert anonymous.get(url).status_code == 403, url
        assert anonymous.get("/", params={"token": "wrong"}).status_code == 403
        assert anonymous.get("/", headers={"authorization": f"token {access.token}"}).status_code == 200
        first = anonymous.get("/usage", params={"token": access.token, "x": "1"})
        assert first.status_code == 303 and first.headers["location"] == "/usage?x=1"  # the token leaves the URL
        assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
        assert anonymous.get("/usage").status_code == 200  # with the cookie now
        anonymous.cookies.clear()
        assert anonymous.get("/usage").status_code == 403
        anonymous.cookies.set(access.cookie, "left-by-an-earlier-server")
        assert anonymous.get("/usage").status_code == 403
        assert anonymous.get("/usage", params={"token": access.token}).status_code == 303  # the new URL still works


def test_on_localhost_pages_need_the_right_host_header(world: tuple[Path, list]) -> None:
    access = Access(hosts=frozenset({"127.0.0.1:8765"}))
    with TestClient(create_app(lambda: Store(world[0]), access), base_url="http://127.0.0.1:8765") as local:
        assert local.get("/").status_code == 200
        assert local.get("/", headers={"host": "attacker.example:8765"}).status_code == 403  # DNS rebinding


def test_a_change_needs_the_token_and_the_csrf_token(client: TestClient, world: tuple[Path, list]) -> None:
    job = next(r for r in world[1] if r.backend == "local")  # ended: cancel keeps its outcome
    url = f"/jobs/{job.id}/cancel"
    csrf = re.search(r'name="csrf" value="(\w+)"', client.get("/plan").text).group(1)
    cookies = dict(client.cookies)
    client.cookies.clear()
    assert client.post(url, data={"csrf": csrf}).status_code == 403  # no session token
    for name, value in cookies.items():
        client.cookies.set(name, value)
    assert client.post(url, data={}).status_code == 403  # no CSRF token
    assert client.post(url, data={"csrf": "0" * 64}).status_code == 403
    assert client.post(url, data={"csrf": csrf}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post(url, data={"csrf": csrf}, headers={"sec-fetch-site": "cross-site"}).status_code == 403
    done = client.post(url, data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith(f"/jobs/{job.id}")
    assert Store(world[0]).get(job.id).state is job.state


def test_the_vendored_chart_library_is_the_one_its_provenance_names() -> None:
    static = REPO / "launcher" / "ui" / "static"
    provenance = (static / "PROVENANCE.md").read_text()
    digest = hashlib.sha256((static / "chart.umd.min.js").read_bytes()).hexdigest()
    assert f"chart.umd.min.js: {digest}" in provenance and "4.6.1" in provenance
    assert (static / "chart.js.LICENSE.md").read_text().startswith("The MIT License")
    assert "http" not in (static / "app.js").read_text()  # nothing fetched from elsewhere


# -- the log stream ------------------------------------------------------------------------------------------


def events(text: str) -> list[dict]:
    found = []
    for chunk in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.split("\n") if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append({"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])})
    return found


def test_logs_stream_ends_and_resumes_after_the_last_event_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real local job on two nodes: the stream gives every line once, then `end`; from an event's id
    on, exactly the lines after it; a bad id is refused rather than repeating the log."""
    from launcher import runner
    from launcher.spec import parse_spec

    monkeypatch.setenv("LAUNCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UI_TEST_SECRET", SECRET)
    spec = parse_spec("name: lines\nrun: 'for i in 1 2 3 4 5; do echo \"n$LAUNCH_NODE_RANK step=$i loss=0.$i\"; "
                      "sleep 0.1; done; echo \"$UI_TEST_SECRET\"; echo \"<script>alert(1)</script>\"'\n"
                      "secrets: [UI_TEST_SECRET]\nresources:\n  nodes: 2\n", "s.yaml", base_dir=tmp_path)
    store = Store.open()
    job = runner.submit(store, spec, "local").record
    runner.wait(store, job)
    with TestClient(create_app(Store.open, Access())) as client:
        full = events(client.get(f"/jobs/{job.id}/logs").text)
        assert full[-1] == {"id": None, "event": "end", "data": {"state": "SUCCEEDED"}}
        lines = [(e["data"]["node"], line) for e in full[:-1] for line in e["data"]["text"].split("\n")
                 if not line.startswith("[launch]")]
        for node in (0, 1):
            assert [t for n, t in lines if n == node] == [f"n{node} step={i} loss=0.{i}" for i in range(1, 6)] + \
                ["****", "<script>alert(1)</script>"]
        middle = len(full) // 2
        rest = events(client.get(f"/jobs/{job.id}/logs", headers={"last-event-id": full[middle - 1]["id"]}).text)
        assert [e["data"] for e in rest] == [e["data"] for e in full[middle:]]
        assert client.get(f"/jobs/{job.id}/logs", headers={"last-event-id": "not-a-cursor!"}).status_code == 400
        assert client.get(f"/jobs/{job.id}/metrics").json()["series"] == \
            {"loss": [[float(i), i / 10] for i in range(1, 6)]}  # node 0's


def test_logs_that_cannot_be_read_say_why_in_one_event(client: TestClient, world: tuple[Path, list]) -> None:
    """A record whose handle lacks what its backend reads: one `problem` event with the runner's own
    message (as `launch logs` says it), then the stream ends; the metrics say so too."""
    job = next(r for r in world[1] if r.backend == "sagemaker" and r.state is JobState.RUNNING and not r.group_id)
    got = events(client.get(f"/jobs/{job.id}/logs").text)
    assert [e["event"] for e in got] == ["problem"]
    assert "record lacks" in got[0]["data"]["message"] and "launch list --sync" in got[0]["data"]["message"]
    assert "record lacks" in client.get(f"/jobs/{job.id}/metrics").json()["error"]


def test_a_closed_page_stops_its_log_follow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real uvicorn server (in this process, so its threads can be seen) streaming a running job's logs:
    once the client goes, the runner's follow for it returns instead of reading on until the job ends."""
    import threading

    import httpx
    import uvicorn

    from launcher import runner
    from launcher.spec import parse_spec
    from launcher.ui.server import bind

    monkeypatch.setenv("LAUNCH_HOME", str(tmp_path / "home"))
    spec = parse_spec("name: endless\nrun: 'while true; do echo tick; sleep 0.2; done'\n", "s.yaml", base_dir=tmp_path)
    store = Store.open()
    job = runner.submit(store, spec, "local").record
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(Store.open, Access()), log_level="warning", lifespan="on"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    following = lambda: [t for t in threading.enumerate() if t.name == f"logs-{job.id}"]  # noqa: E731
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/jobs/{job.id}/logs"
        with httpx.stream("GET", url, timeout=30) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            ticks = 0
            for line in response.iter_lines():
                ticks += line.startswith("data: ") and "tick" in line
                if ticks >= 2:
                    break
            assert following()
        deadline = time.monotonic() + 30
        while following() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not following(), "the follow outlived its page"
    finally:
        runner.cancel(store, store.get(job.id))
        server.should_exit = True
        serving.join(timeout=30)
        sock.close()
    assert store.get(job.id).state is JobState.CANCELLED


def test_opening_another_connection_keeps_the_locks_of_the_open_ones(tmp_path: Path) -> None:
    """The server opens a store per thread while its other threads' connections are open. Opening one
    must not drop the SQLite locks this process holds (closing any descriptor of the file releases them
    all: POSIX locks). Else another process closing its connection believes it was the last, checkpoints
    and deletes the WAL under this one's feet: "disk I/O error", then "database disk image is malformed"."""
    path = tmp_path / "jobs.db"
    held = Store(path)
    try:
        held.list()
        Store(path).close()  # another server thread's first request
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
                        "db.execute('SELECT count(*) FROM jobs').fetchall(); db.close()", str(path)],
                       check=True, timeout=60)  # a `launch` command elsewhere, done with the history
        assert Path(f"{path}-wal").exists(), "the other process took this one's connection for gone"
        assert held.list() == []
    finally:
        held.close()


def test_the_dashboard_reads_a_shared_postgresql_store(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """The team's store (store_url) serves the same pages: a connection per server thread."""
    from test_ui_world import fill

    from launcher.store import open_store
    from launcher.store_pg import PgStore

    monkeypatch.setenv("LAUNCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAUNCH_STORE_URL", pg_url)
    shared = PgStore(pg_url)
    try:
        written = fill(shared, 40)
    finally:
        shared.close()
    with TestClient(create_app(open_store, Access())) as client:
        page = client.get("/", params={"limit": "all"})
        assert sorted(r["data-job-id"] for r in job_rows(page.text)) == sorted(r.id for r in written)
        sweep = client.get("/sweep", params={"group": SWEEP})
        assert sweep.status_code == 200 and sweep.text.count('class="cell"') == 6
        job = written[0]
        assert client.get(f"/jobs/{job.id}").status_code == 200
        assert client.get("/api/states", params={"id": job.id}).json()["jobs"][job.id]["state"] == job.state.value


def test_with_host_the_printed_url_carries_the_token(tmp_path: Path) -> None:
    """`launch ui --host ADDRESS`: the printed URL holds the token; without it every request is refused."""
    import urllib.error
    import urllib.request

    env = {**os.environ, "LAUNCH_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    server = subprocess.Popen([sys.executable, "-m", "launcher", "ui", "--host", "127.0.0.1", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", server.stdout.readline()).group(0)
        bare = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bare, timeout=30)
        assert refused.value.code == 403
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with browser.open(url, timeout=30) as page:  # redirected without the token, with the cookie
            assert page.status == 200 and page.url == bare and "No jobs" in page.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- the command ---------------------------------------------------------------------------------------------


def _python(code: str, *args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAUNCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)


def test_without_the_ui_extra_launch_ui_says_what_to_install(tmp_path: Path) -> None:
    hide = "import sys; sys.modules.update(dict.fromkeys(['starlette', 'uvicorn', 'jinja2']))\n"
    result = _python(hide + "sys.argv = ['launch', 'ui']\nfrom launcher.cli import run_main\nrun_main()",
                     home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "launch ui needs starlette, uvicorn and jinja2" in result.stderr
    assert re.search(r"hint: pip install .*\[ui\]", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_starting_the_cli_does_not_import_the_dashboard(tmp_path: Path) -> None:
    code = ("import json, sys\nsys.argv = ['launch', *sys.argv[1:]]\nfrom launcher.cli import run_main\n"
            "try:\n    run_main()\nexcept SystemExit:\n    pass\nprint(json.dumps(sorted(sys.modules)))")
    for args in (["--help"], ["ui", "--help"], ["list"]):
        result = _python(code, *args, home=tmp_path / "home")
        loaded = json.loads(result.stdout.strip().splitlines()[-1])
        assert not [m for m in loaded if m.split(".")[0] in ("starlette", "uvicorn", "jinja2")
                    or m.startswith("launcher.ui")], args


def test_launch_ui_serves_on_a_free_port_and_a_taken_port_is_one_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        refused = _python("from launcher.cli import run_main; import sys; sys.argv = ['launch', 'ui', '--port', "
                          f"'{port}']; run_main()", home=home)
    assert refused.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in refused.stderr, refused.stderr
    env = {**os.environ, "LAUNCH_HOME": str(home), "PYTHONPATH": str(REPO)}
    server = subprocess.Popen([sys.executable, "-m", "launcher", "ui", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline()).group(0)
        import urllib.request

        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and "No jobs" in page.read().decode()
    finally:
        server.terminate()
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn stops, then re-raises the signal
    assert "Traceback" not in server.stderr.read()


def html_escape(text: str) -> str:
    """As the templates escape (markupsafe: &#34; and &#39; for quotes)."""
    import markupsafe

    return str(markupsafe.escape(text))


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_timestamps_are_utc() -> None:
    assert views.when(T0) == "2026-09-21 14:13:20" and views.when(None) == "-"
    assert time.gmtime(T0).tm_mday == 21
