"""Browser tests of the web app (`mdsurrogate app`): the real server on a free port, driven by Playwright through
the system's Debian `chromium` (never a downloaded browser). Values are read from the Bokeh models the browser
draws, downloads from the files the browser saves, processes from /proc."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mdsurrogate.campaign.backends import marked_processes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TAG_ENV = "MDSURROGATE_APP_TEST_TAG"
SMALL = {"h": 4.0, "c": 0.1, "d_plus": 0.415, "sigma_s": -0.015}  # a small system: short MD runs take seconds


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not os.path.exists(CHROMIUM):
        return ("the Debian `chromium` package is not installed and scripts/setup.sh could not install it "
                "(apt-get install -y chromium needs root and the package mirror)")
    return None


try:
    from playwright.sync_api import expect
except ImportError:  # the tests skip below
    expect = None

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def tagged_processes(tag: str, comm: str | None = None) -> list[int]:
    """Live processes started by this test's server (found by the tag in their environment), only those named
    `comm` if given."""
    pids = marked_processes(tag, TAG_ENV, skip_zombies=True)
    return pids if comm is None else [p for p in pids if _comm(p) == comm]


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _start_server(workdir: Path, log: Path, tag: str) -> tuple[subprocess.Popen, str]:
    """`mdsurrogate app --port 0` started as a user would (its own process group, SIGINT as in a terminal), its
    output in the file `log` (a pipe nobody reads would fill and block the server); returns (process, URL)."""
    exe = Path(sys.executable).with_name("mdsurrogate")
    env = {**os.environ, TAG_ENV: tag, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(exe), "app", "--port", "0", "--workdir", str(workdir)], stdout=fh,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 180 and proc.poll() is None:
        m = re.search(r"serving at (http://127\.0\.0\.1:\d+/)", log.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the app never finished starting: " + log.read_text(errors="replace")[-2000:])


def _stop_server(proc: subprocess.Popen, tag: str) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for pid in tagged_processes(tag):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mdsurrogate app --port 0` started as a user would; yields (url, tag, workdir)."""
    tag = uuid.uuid4().hex
    workdir = tmp_path_factory.mktemp("app-sessions")
    proc, url = _start_server(workdir, tmp_path_factory.mktemp("app-log") / "server.log", tag)
    yield url, tag, workdir
    _stop_server(proc, tag)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """One browser session of the app, offline: any request that leaves 127.0.0.1 is refused and recorded."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.external: list[str] = []
        self.page.route("**/*", self._route)
        self.page.goto(url)
        self.page.locator(".btn-predict button").wait_for(timeout=30_000)
        # the document is synchronised with the server (events sent before that could be lost)
        self.page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                                    timeout=30_000)

    def _route(self, route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()

    def close(self):
        self.context.close()

    def set(self, name: str, value) -> None:
        box = self.page.locator(f".{name} input" if "-" in name else f".inp-{name} input")
        box.fill(str(value))
        box.press("Tab")

    def set_inputs(self, **values) -> None:
        for k, v in values.items():
            self.set(k, v)
        self.page.wait_for_timeout(300)  # let the last change reach the server

    def tab(self, title: str) -> None:
        self.page.locator(".bk-tab", has_text=title).first.click()
        self.page.wait_for_timeout(300)

    def click(self, css: str) -> None:
        self.page.locator(f"{css} button").click()

    def text(self, css: str) -> str:
        return self.page.locator(css).evaluate(
            "el => Array.from((el.shadowRoot || el).childNodes).filter(n => !['STYLE', 'LINK'].includes(n.nodeName))"
            ".map(n => n.textContent).join(' ')")

    def wait_text(self, css: str, needle: str, timeout_s: float = 60.0) -> str:
        """The element's text once it contains `needle` (a loaded machine updates it after the plots)."""
        import time

        end = time.monotonic() + timeout_s
        got = self.text(css)
        while needle not in got and time.monotonic() < end:
            self.page.wait_for_timeout(200)
            got = self.text(css)
        return got

    def source(self, name: str) -> dict:
        return self.page.evaluate(
            "name => { const s = Bokeh.documents[0].get_model_by_name(name); const out = {};"
            " for (const [k, v] of Object.entries(s.data)) out[k] = Array.from(v); return out; }", name)

    def wait_source(self, name: str, timeout: float = 45_000) -> dict:
        self.page.wait_for_function(
            "name => { const s = Bokeh.documents[0].get_model_by_name(name); return s && s.data.z.length > 0; }",
            arg=name, timeout=timeout)
        return self.source(name)

    def progress(self) -> float:
        return float(self.page.locator(".md-progress progress").get_attribute("value") or 0)

    def wait_status(self, pattern: str, timeout: float = 300.0) -> str:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            txt = self.text(".status-line")
            if re.search(pattern, txt):
                return txt
            time.sleep(0.2)
        pytest.fail(f"the page never finished: its status never matched {pattern!r} in {timeout:g} s; last: {txt!r}; "
                    f"log: {self.text('.run-log')!r}")

    def download(self, css: str) -> tuple[str, bytes]:
        with self.page.expect_download(timeout=20_000) as info:
            self.click(css)
        d = info.value
        return d.suggested_filename, Path(d.path()).read_bytes()


@pytest.fixture
def page(browser, server):
    p = Page(browser, server[0])
    yield p
    p.close()
    assert not p.external, f"the app tried to reach the network: {p.external[:3]}"


def _system(**kw):
    from mdsurrogate.simulation.system import ConfinedElectrolyte

    v = {**SMALL, **kw}
    return ConfinedElectrolyte(h=v["h"], c=v["c"], d_plus=v["d_plus"], d_minus=v.get("d_minus", v["d_plus"]),
                               sigma_s=v["sigma_s"])


def test_predict_plots_the_surrogate_values(page):
    from mdsurrogate import Surrogate

    page.set_inputs(c=0.75, h=4.6, d_plus=0.3075, sigma_s=-0.02)
    t0 = time.monotonic()
    page.click(".btn-predict")
    data = page.wait_source("ml_source")
    round_trip_s = time.monotonic() - t0  # through the browser; recorded, not asserted (machines are noisy)
    ms = float(re.search(r"ML prediction in (\d+) ms", page.text(".status-line")).group(1))
    print(f"predict: round trip {round_trip_s:.2f} s, ML prediction {ms:g} ms")
    ref = Surrogate.load().predict({"h": 4.6, "c": 0.75, "d_plus": 0.3075, "d_minus": 0.3075, "sigma_s": -0.02})
    ref = ref.isel(system=0)
    np.testing.assert_allclose(data["z"], ref["z"].values, rtol=1e-6)
    np.testing.assert_allclose(data["n_plus"], ref["n_plus"].values, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(data["n_minus"], ref["n_minus"].values, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.subtract(data["n_plus_hi"], data["n_plus"]), ref["n_plus_std"].values, atol=1e-6)
    # size asymmetry: d- follows d+ until the toggle is on
    page.page.locator(".inp-asym input").check()
    page.set_inputs(d_minus=0.5225)
    page.click(".btn-predict")
    page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('ml_source').data.n_minus[250] !== "
                                f"{data['n_minus'][250]}")
    ref2 = Surrogate.load().predict({"h": 4.6, "c": 0.75, "d_plus": 0.3075, "d_minus": 0.5225, "sigma_s": -0.02})
    np.testing.assert_allclose(page.source("ml_source")["n_minus"], ref2["n_minus"].values[0], rtol=1e-6, atol=1e-7)


def test_bad_input_shows_the_error_and_runs_nothing(page, server):
    _, tag, workdir = server
    before = set(workdir.rglob("job.json"))
    page.set_inputs(h=7.0)
    page.click(".btn-run")
    page.page.wait_for_timeout(500)
    msg = page.text(".msg")
    assert "h (confinement length) = 7.0 nm is outside the design range [4.0, 5.0]" in msg
    assert "Not run" in page.text(".status-line")
    assert set(workdir.rglob("job.json")) == before
    assert not tagged_processes(tag, "lmp")
    page.click(".btn-predict")
    page.page.wait_for_timeout(300)
    assert "outside the design range" in page.text(".msg")
    assert page.source("ml_source")["z"] == []
    # a run too short for the engine is refused with the reason, too
    page.set_inputs(h=4.0, length=1)
    page.click(".btn-run")
    page.page.wait_for_timeout(300)
    assert "simulation length must be at least 2.5 tau" in page.text(".msg")
    assert set(workdir.rglob("job.json")) == before


def test_md_run_progress_overlay_and_downloads(page):
    page.set_inputs(**SMALL, length=5)  # 500 steps
    page.click(".btn-predict")
    page.wait_source("ml_source")
    page.click(".btn-run")
    expect(page.page.locator(".inp-h input")).to_be_disabled(timeout=5000)  # inputs locked while running
    page.wait_status(r"MD done \(100 %\)")
    assert page.progress() == 100
    md = page.wait_source("md_source")
    bars = page.source("md_bars")
    assert len(md["z"]) == 502 and len(bars["z"]) > 50
    ml = page.source("ml_source")
    assert len(ml["z"]) == 502  # the ML curve is drawn over the MD result
    expect(page.page.locator(".inp-h input")).to_be_enabled(timeout=5000)
    assert "MDSURROGATE_DONE" in page.text(".run-log")  # the run log panel shows the LAMMPS log

    files = {}
    for css in (".dl-ml-csv", ".dl-ml-tsv", ".dl-ml-nc", ".dl-md-csv", ".dl-md-tsv", ".dl-md-nc", ".dl-png",
                ".dl-summary", ".dl-log"):
        name, data = page.download(css)
        files[css] = (name, data)
    import pandas as pd

    key = _system().key()
    name, data = files[".dl-ml-csv"]
    assert name == f"{key}_ml_profile.csv"
    t = pd.read_csv(io.BytesIO(data))
    np.testing.assert_allclose(t["n_plus_M"], ml["n_plus"], rtol=1e-6)
    np.testing.assert_allclose(t["n_minus_std_M"], np.subtract(ml["n_minus_hi"], ml["n_minus"]), atol=1e-6)
    t = pd.read_csv(io.BytesIO(files[".dl-ml-tsv"][1]), sep="\t")
    np.testing.assert_allclose(t["z_nm"], ml["z"], rtol=1e-6)
    t = pd.read_csv(io.BytesIO(files[".dl-md-csv"][1]))
    np.testing.assert_allclose(t["n_plus_M"], md["n_plus"], rtol=1e-6)
    np.testing.assert_allclose(t["n_plus_err_M"], np.subtract(md["n_plus_hi"], md["n_plus"]), atol=1e-6)
    t = pd.read_csv(io.BytesIO(files[".dl-md-tsv"][1]), sep="\t")
    np.testing.assert_allclose(t["S_C_per_m2"], md["integrated_charge"], rtol=1e-6, atol=1e-12)
    ds = xr.load_dataset(io.BytesIO(files[".dl-ml-nc"][1]), engine="h5netcdf")
    np.testing.assert_allclose(ds["n_plus_std"].values, np.subtract(ml["n_plus_hi"], ml["n_plus"]), atol=1e-6)
    ds = xr.load_dataset(io.BytesIO(files[".dl-md-nc"][1]), engine="h5netcdf")
    assert ds.attrs["system_key"] == key and ds.attrs["status"] == "done"
    np.testing.assert_allclose(ds["n_minus_err"].values, np.subtract(md["n_minus_hi"], md["n_minus"]), atol=1e-6)
    assert files[".dl-png"][1][:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(files[".dl-summary"][1])
    assert summary["system_key"] == key and summary["h"] == 4.0
    log = files[".dl-log"][1].decode()
    assert "LAMMPS" in log and "MDSURROGATE_DONE" in log
    # the session's history lists both answers
    page.tab("Previous runs")
    assert "ML: h=4 c=0.1" in page.text(".history-list") and "ML+MD: h=4 c=0.1" in page.text(".history-list")


def _wait_for_lammps(tag: str, ranks: int, timeout: float = 300.0) -> None:
    t0 = time.monotonic()
    while len(tagged_processes(tag, "lmp")) < ranks:
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"LAMMPS never finished starting ({ranks} ranks) in {timeout:g} s")
        time.sleep(0.2)


def test_cancel_kills_every_lammps_rank(page, server):
    _, tag, _ = server
    page.set_inputs(**SMALL, length=100000, ranks=2)
    page.click(".btn-run")
    _wait_for_lammps(tag, 2)
    page.wait_status(r"MD running: step \d+")
    expect(page.page.locator(".inp-c input")).to_be_disabled(timeout=5000)
    page.click(".btn-cancel")
    page.wait_status("MD cancelled")
    assert tagged_processes(tag, "lmp") == []
    workers = [p for p in tagged_processes(tag) if b"mdsurrogate.app.mdworker" in _cmdline(p)]
    assert workers == []
    expect(page.page.locator(".inp-c input")).to_be_enabled(timeout=5000)
    expect(page.page.locator(".btn-cancel button")).to_be_disabled(timeout=5000)


def test_two_sessions_do_not_see_each_other(browser, server):
    a, b = Page(browser, server[0]), Page(browser, server[0])
    try:
        a.set_inputs(**SMALL, length=5)
        a.click(".btn-run")
        b.set_inputs(c=1.5)
        b.click(".btn-predict")  # B keeps working while A's MD runs
        try:
            b.wait_source("ml_source")
        except Exception:
            raise AssertionError(f"B: {b.text('.status-line')!r} {b.text('.msg')!r}; A: {a.text('.status-line')!r}")
        assert "MD" not in b.text(".status-line")
        a.wait_status(r"MD done \(100 %\)")
        assert len(a.wait_source("md_source", timeout=60_000)["z"]) == 502  # the plot data syncs after the status
        b.page.wait_for_timeout(500)
        assert b.source("md_source")["z"] == []
        a.tab("Previous runs")
        b.tab("Previous runs")
        assert "MD" not in b.text(".history-list") and "c=1.5" in b.text(".history-list")
        assert "c=1.5" not in a.text(".history-list")
        assert b.text(".run-log").strip() == ""
        expect(b.page.locator(".dl-log button")).to_be_disabled()
    finally:
        a.close()
        b.close()
    assert not a.external and not b.external


def test_auto_sweep_and_sensitivity(page):
    """Auto answers from the dataset for a simulated system when the ML spread is above the bound, from ML when it
    is below; the sweep and Sobol tabs plot what `analysis` computes."""
    from mdsurrogate.analysis.sensitivity import sobol_indices
    from mdsurrogate.analysis.sweeps import sweep
    from mdsurrogate.app.core import data_dir
    from mdsurrogate.surrogate import Surrogate

    sur = Surrogate.load()
    data = data_dir()
    if data is not None and (data / "paper_subset_1000.nc").exists():
        with xr.open_dataset(data / "paper_subset_1000.nc", engine="h5netcdf") as ds:
            row = ds.isel(system=0)
            inputs = {k: float(row[k]) for k in ("h", "c", "d_plus", "d_minus", "sigma_s")}
            ref_n_plus = row["n_plus"].values
        page.page.locator(".inp-asym input").check()
        page.set_inputs(**inputs, bound=0.0001)
        page.click(".btn-auto")
        page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('md_source').data.z.length > 0",
                                    timeout=60_000)
        assert "answered from the project's dataset" in page.text(".decision")
        np.testing.assert_allclose(page.source("md_source")["n_plus"], ref_n_plus, rtol=1e-6)
        page.set_inputs(bound=1.0)
        page.click(".btn-auto")
        page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('md_source').data.z.length == 0")
        assert "Auto answered with ML" in page.wait_text(".decision", "Auto answered with ML")
        page.page.locator(".inp-asym input").uncheck()
    page.set_inputs(h=4.4, c=0.5, d_plus=0.415, sigma_s=-0.015)
    page.tab("Sweep")
    page.click(".btn-sweep")
    page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('sweep_decay') !== null", timeout=30_000)
    got = page.source("sweep_decay")
    ref = sweep(sur, {"h": 4.4, "c": 0.5, "d_plus": 0.415, "d_minus": 0.415, "sigma_s": -0.015}, "c",
                np.linspace(0.1, 2.0, 6))
    np.testing.assert_allclose(got["value"], ref["value"].values)
    np.testing.assert_allclose(got["decay_length"], ref["decay_length"].values, rtol=1e-6)
    page.tab("Sensitivity")
    page.set_inputs(**{"sobol-n": 64})
    page.page.locator(".sobol-z input").fill("-1.5")
    page.page.locator(".sobol-z input").press("Tab")
    page.page.wait_for_timeout(300)
    page.click(".btn-sobol")
    page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('sobol_source') !== null", timeout=60_000)
    got = page.source("sobol_source")
    spec = {"h": 4.4, "c": 0.5, "d_plus": ("norm", 0.4, 0.01), "d_minus": ("norm", 0.6, 0.015), "sigma_s": -0.015}
    with pytest.warns(Warning):
        ref = sobol_indices(sur, spec, 64, 0, allow_extrapolation=True)
    i = int(np.argmin(np.abs(ref["z"].values + 1.5)))
    assert got["label"][0] == "d+ S1 n+"
    assert got["value"][0] == pytest.approx(float(ref["S1_n_plus"].sel(input="d_plus").values[i]), rel=1e-6, abs=1e-9)
    assert got["value"][7] == pytest.approx(float(ref["ST_n_minus"].sel(input="d_minus").values[i]), rel=1e-6,
                                            abs=1e-9)
    assert got["label"][-1] == "d- ST rho"  # the charge density's own indices (kadupitiya2021 Fig. 8)
    assert got["value"][-1] == pytest.approx(float(ref["ST_rho"].sel(input="d_minus").values[i]), rel=1e-6,
                                             abs=1e-9)


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_stopping_the_server_ends_its_runs_and_removes_its_folders(browser, tmp_path, how):
    """The MD runs live in their own process groups (so that Cancel can kill them whole): a server stopped by
    SIGTERM (to its process) or Ctrl-C (SIGINT to its process group, as a terminal sends it) must end them itself."""
    tag = uuid.uuid4().hex
    workdir = tmp_path / "sessions"
    proc, url = _start_server(workdir, tmp_path / "server.log", tag)
    page = Page(browser, url)
    try:
        page.set_inputs(**SMALL, length=100000, ranks=1)
        page.click(".btn-run")
        _wait_for_lammps(tag, 1)
        assert list(workdir.glob("session-*/run-001/job.json"))
        run_pids = [p for p in tagged_processes(tag) if p != proc.pid]
        if how == "SIGTERM":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server never finished stopping after {how}: "
                        + (tmp_path / "server.log").read_text(errors="replace")[-2000:])
        t0 = time.monotonic()
        while tagged_processes(tag) and time.monotonic() - t0 < 10:  # the last ones may take a moment to be reaped
            time.sleep(0.2)
        left = tagged_processes(tag)
        assert left == [], f"processes of the run survived {how}: {[_cmdline(p) for p in left]} (run: {run_pids})"
        assert list(workdir.glob("session-*")) == [], "the sessions' folders were left behind"
    finally:
        page.close()
        _stop_server(proc, tag)
