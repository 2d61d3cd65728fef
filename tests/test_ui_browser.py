"""`launch ui` in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromedriver, against `launch ui --port 0` serving a history of jobs on every backend plus a real local
job that prints slowly. One browser session walks the scenario a person would: the table, a filter,
the running job's page with its log lines arriving, the metrics chart, Cancel with its confirmation,
and the job ends CANCELLED. Screenshots (the jobs page, two charts) are kept under the test's tmp dir
(artifacts/) and must not be blank. Without the browser this fails: ci/test installs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from test_ui_world import filled_store

from launcher.backend import JobState, Status
from launcher.store import Store

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30
SPEC = """name: slow-printer
run: 'echo "$GREETING"; i=0; while [ $i -lt 900 ]; do i=$((i+1)); echo "step=$i loss=0.$((1000 - i))"; sleep 0.1; done'
env:
  GREETING: "<script>alert('log')</script> hello"
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "LAUNCH_HOME": str(home), "PYTHONPATH": str(REPO)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(dashboard URL, LAUNCH_HOME, the running local job's id); the server and the job stopped after."""
    home = tmp_path / "home"
    home.mkdir()
    filled_store(home / "jobs.db", 200)
    spec = tmp_path / "slow.yaml"
    spec.write_text(SPEC)
    submitted = subprocess.run([sys.executable, "-m", "launcher", "run", str(spec), "-o", "json"], env=_env(home),
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    job = re.search(r'"id": "([^"]+)"', submitted.stdout).group(1)
    errors = (tmp_path / "server.err").open("w")  # a file, not a pipe: a chatty server never blocks on it
    process = subprocess.Popen([sys.executable, "-m", "launcher", "ui", "--port", "0"], env=_env(home), cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=errors, text=True)
    try:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line + (tmp_path / "server.err").read_text()
        yield found.group(0), home, job
    finally:
        subprocess.run([sys.executable, "-m", "launcher", "cancel", job], env=_env(home), capture_output=True,
                       timeout=120)
        process.terminate()
        process.wait(timeout=30)
        errors.close()
    assert "Traceback" not in (tmp_path / "server.err").read_text()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), \
        "the browser test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver"
    profile = tmp_path / "chromium-profile"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-extensions", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
    assert _processes_naming(str(profile)) == [], "the browser outlived its session"


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line names `text` (this test's own profile dir, so no one else's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _not_blank(png: Path, *, colours: int) -> None:
    """Pixel variance well above a flat page, and more distinct colours than a blank one has."""
    image = Image.open(png).convert("RGB")
    assert image.width > 100 and image.height > 100
    assert max(ImageStat.Stat(image).stddev) > 10, f"{png} looks blank"
    assert len(image.getcolors(maxcolors=1 << 20) or []) > colours, f"{png} has too few colours to be a chart"


def test_dashboard_in_a_browser(server: tuple[str, Path, str], browser: object, tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    url, home, job = server
    driver = browser
    wait = WebDriverWait(driver, WAIT_S)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()

    def rows() -> list[tuple[str, str]]:
        return [(r.get_attribute("data-job-id"), r.get_attribute("data-state"))
                for r in driver.find_elements(By.CSS_SELECTOR, "tr.job")]

    # the table: every job, newest (ours) first
    driver.get(url)
    wait.until(lambda d: len(rows()) > 200)
    assert rows()[0][0] == job
    driver.save_screenshot(str(artifacts / "jobs.png"))
    _not_blank(artifacts / "jobs.png", colours=20)

    # filters: a state applies at once; the text box on Enter
    Select(driver.find_element(By.ID, "filter-state")).select_by_value("RUNNING")
    wait.until(lambda d: "state=RUNNING" in d.current_url and len(rows()) < 200)
    assert {state for _, state in rows()} == {"RUNNING"} and job in [i for i, _ in rows()]
    # another `launch` records an end meanwhile: the row changes without a reload
    other = next(i for i, _ in rows() if i != job)
    driver.execute_script("window.notReloaded = true")
    store = Store(home / "jobs.db")
    try:
        store.set_status(other, Status(JobState.FAILED, "Failed", "exit 1"))
    finally:
        store.close()
    row = driver.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{other}"]')
    wait.until(lambda d: row.get_attribute("data-state") == "FAILED" and row.find_element(By.CSS_SELECTOR,
                                                                                          "td.state").text == "FAILED")
    assert driver.execute_script("return window.notReloaded === true")
    box = driver.find_element(By.ID, "filter-text")
    box.send_keys("slow-printer", Keys.ENTER)
    wait.until(lambda d: "q=slow-printer" in d.current_url)
    assert rows() == [(job, "RUNNING")]

    # the running job: its lines arrive while the page is open
    driver.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job}"] a.name').click()
    log = wait.until(seen.presence_of_element_located((By.ID, "log-node-0")))
    wait.until(lambda d: "step=5 " in log.text)
    first = log.text.count("step=")
    wait.until(lambda d: log.text.count("step=") >= first + 10)  # more came, no reload
    steps = [int(s) for s in re.findall(r"step=(\d+) ", log.text)]
    assert steps == list(range(1, len(steps) + 1)), "a line was repeated or lost"
    assert "<script>alert('log')</script> hello" in log.text  # shown as text
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 -- nothing ran it

    # its metrics chart
    chart = wait.until(seen.visibility_of_element_located((By.ID, "metrics-chart")))
    wait.until(lambda d: d.execute_script("return !!(window.Chart && Chart.getChart('metrics-chart'))"))
    chart.screenshot(str(artifacts / "metrics-chart.png"))
    _not_blank(artifacts / "metrics-chart.png", colours=8)

    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(artifacts / "job.png"))

    # Cancel, confirmed in the browser's dialog
    driver.find_element(By.ID, "cancel-button").click()
    dialog = wait.until(seen.alert_is_present())
    assert dialog.text.startswith(f"Cancel job {job}?")
    dialog.accept()
    wait.until(lambda d: d.find_element(By.ID, "job-state").text == "CANCELLED")
    assert not driver.find_elements(By.ID, "cancel-button")
    wait.until(lambda d: "has ended (CANCELLED)" in d.find_element(By.ID, "log-status").text)
    store = Store(home / "jobs.db")
    try:
        assert store.get(job).state is JobState.CANCELLED
    finally:
        store.close()

    # the usage picture
    driver.get(url + "usage")
    wait.until(lambda d: d.execute_script("return !!(window.Chart && Chart.getChart('gpu-hours-chart'))"))
    driver.find_element(By.ID, "gpu-hours-chart").screenshot(str(artifacts / "usage-chart.png"))
    _not_blank(artifacts / "usage-chart.png", colours=8)

    # nothing the page did was refused by its Content-Security-Policy, and no script failed
    problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert problems == [], problems
    keep = os.environ.get("LAUNCH_UI_ARTIFACTS")  # CI may ask for the pictures somewhere it collects
    if keep:
        shutil.copytree(artifacts, Path(keep), dirs_exist_ok=True)
    print(f"screenshots: {artifacts}")  # shown with -s
