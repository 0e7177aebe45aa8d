"""Real-browser end-to-end test: JupyterLab + headless Debian Chromium through Python Playwright.

Starts JupyterLab on 127.0.0.1 with a temporary configuration on a temporary copy of the notebooks
(so autosave can never write outputs into the repository), opens ``01_data_prep.ipynb``, runs all
cells through the app's command registry, moves the azimuth slider of the pose explorer with the
keyboard, and checks that the rendered view and the status line changed and that no cell shows an
error. Then, in the same JupyterLab page, it opens ``09_results_tables.ipynb``, runs all its cells and
checks that none shows an error and that the results browser rendered. Screenshots are saved in the
test's temporary directory and copied to ``outputs/e2e/``, with the timings of each step.

The lab's copy of 09 gets ``TRAIN_MISSING = False`` injected after its parameters cell (as
papermill would): the browser test checks the front end over whatever runs exist (those of the
notebook executions earlier in the session, or none); training is covered by
``test_notebooks_execute.py``.

Never runs ``playwright install``: the browser is Debian's ``/usr/bin/chromium`` (``apt-get install
chromium``). Skipped, with the reason, when chromium or playwright is missing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nbhelpers import NOTEBOOK_DIR, REPO

CHROMIUM = os.environ.get("WB_E2E_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
NOTEBOOK = "01_data_prep.ipynb"
RESULTS_NOTEBOOK = "09_results_tables.ipynb"
RUN_TIMEOUT_S = float(os.environ.get("WB_E2E_RUN_TIMEOUT", "150"))

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:   # noqa: S310 - localhost only
        return r.status, r.read()


@pytest.fixture
def jupyter_server(tmp_path, smoke_env):
    """JupyterLab on a free localhost port, temporary config/runtime/settings/workspaces dirs."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="python playwright not installed (pip install playwright)")
    pytest.importorskip("jupyterlab", reason="jupyterlab not installed")
    root = tmp_path / "lab"
    shutil.copytree(NOTEBOOK_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    dirs = {k: tmp_path / k.lower() for k in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR",
                                               "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")}
    for d in dirs.values():
        d.mkdir()
    settings = {  # no autosave (never write outputs back), no news/update toasts
        "docmanager-extension/plugin": {"autosave": False},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in settings.items():
        f = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    # no "Build recommended" dialog (open3d pulls in a dash labextension that asks for a rebuild)
    (dirs["JUPYTER_CONFIG_DIR"] / "labconfig").mkdir()
    (dirs["JUPYTER_CONFIG_DIR"] / "labconfig" / "page_config.json").write_text(
        json.dumps({"buildCheck": False, "buildAvailable": False}))
    env = dict(os.environ, **smoke_env, **{k: str(v) for k, v in dirs.items()})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", f"--ServerApp.root_dir={root}",
           "--allow-root"]
    log = open(tmp_path / "jupyter.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
            try:
                if _get(f"{url}/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("jupyter lab did not start within 60 s")
            time.sleep(0.25)
        yield {"url": url, "root": root, "startup_s": time.perf_counter() - t0, "log": tmp_path / "jupyter.log"}
    finally:
        try:   # shut kernels down over REST, then stop the server we started (its process group)
            for k in json.loads(_get(f"{url}/api/kernels")[1]):
                req = urllib.request.Request(f"{url}/api/kernels/{k['id']}", method="DELETE")
                urllib.request.urlopen(req, timeout=5)   # noqa: S310
        except OSError:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


# the notebook panel, found among the main-area widgets (shell.currentWidget is null in a
# headless browser without focus)
def panel_js(notebook: str) -> str:
    return f"""(() => {{
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {{
    if (w.context && w.context.path.endsWith('{notebook}')) return w;
  }}
  return null;
}})()"""


def run_all_js(notebook: str) -> str:
    return f"""async () => {{
  const app = window.jupyterapp;
  const panel = {panel_js(notebook)};
  app.shell.activateById(panel.id);
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.commands.execute('notebook:run-all-cells');   // not awaited: progress is polled
  return panel.content.widgets.length;
}}"""


def state_js(notebook: str) -> str:
    return """() => {
  const panel = """ + panel_js(notebook) + """;
  if (!panel) return {done: 0, total: -1, busy: true, status: 'none', errors: []};
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  cells.forEach((c, i) => {
    const outs = c.model.outputs.toJSON();
    outs.filter(o => o.output_type === 'error').forEach(o => errors.push(`code cell ${i}: ${o.ename}: ${o.evalue}`));
  });
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {
    done: cells.filter(c => c.model.executionCount !== null).length,
    total: cells.length,
    busy: cells.some(c => c.promptNode && c.promptNode.textContent.includes('*')),
    status: kernel ? kernel.status : 'none',
    errors: errors,
  };
}"""


PANEL, RUN_ALL, STATE = panel_js(NOTEBOOK), run_all_js(NOTEBOOK), state_js(NOTEBOOK)


def run_all_cells(page, notebook: str, timeout_s: float) -> dict:
    """Run every cell of an open notebook and poll until the kernel is idle with every cell run, an
    error shows, or ``timeout_s`` passes; returns the last state."""
    page.evaluate(run_all_js(notebook))
    deadline = time.time() + timeout_s
    state = page.evaluate(state_js(notebook))
    while not (state["done"] == state["total"] and not state["busy"] and state["status"] == "idle"):
        if state["errors"] or time.time() > deadline:
            break
        page.wait_for_timeout(250)
        state = page.evaluate(state_js(notebook))
    return state


def inject_parameters(path: Path, source: str) -> None:
    """Insert a code cell right after the ``parameters`` cell (what papermill does with overrides)."""
    nb = json.loads(path.read_text())
    at = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c.get("metadata", {}).get("tags", []))
    nb["cells"].insert(at + 1, {"cell_type": "code", "id": "injected-parameters", "execution_count": None,
                                "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": source})
    path.write_text(json.dumps(nb))


EXPLORER_IMAGE = """() => {
  const gd = document.querySelector('.wb-pose-explorer .js-plotly-plot');
  if (!gd || !gd.data || !gd.data.length) return null;
  return gd.data[0].source || null;
}"""


def test_jupyterlab_runs_01_and_09_and_the_pose_explorer_reacts(jupyter_server, tmp_path):
    from playwright.sync_api import sync_playwright

    timings = {"server start": jupyter_server["startup_s"]}
    shot = tmp_path / "jupyterlab_01_data_prep.png"
    shot09 = tmp_path / "jupyterlab_09_results_tables.png"
    t_all = time.perf_counter()
    with sync_playwright() as pw:
        t = time.perf_counter()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        timings["browser launch"] = time.perf_counter() - t
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            console_errors: list[str] = []
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            t = time.perf_counter()
            page.goto(f"{jupyter_server['url']}/lab/tree/{NOTEBOOK}?reset", wait_until="domcontentloaded")
            page.wait_for_function(f"{PANEL} !== null", timeout=60_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
            timings["open until kernel idle"] = time.perf_counter() - t

            t = time.perf_counter()
            state = run_all_cells(page, NOTEBOOK, RUN_TIMEOUT_S)
            timings["run all cells"] = time.perf_counter() - t
            if state["errors"] or state["done"] != state["total"]:
                page.screenshot(path=str(shot))
                pytest.fail(f"notebook did not run cleanly: {state} (screenshot {shot}); "
                            f"server log: {jupyter_server['log']}")

            # the pose explorer: plot rendered, then one keyboard step of the azimuth slider
            explorer = page.locator(".wb-pose-explorer")
            explorer.scroll_into_view_if_needed()
            page.wait_for_function(f"({EXPLORER_IMAGE})() !== null", timeout=30_000)
            page.wait_for_function("(() => { const s = document.querySelector('.wb-pose-explorer .wb-pose-status'); "
                                   "return s && s.innerText.includes('azimuth'); })()", timeout=30_000)
            before_img = page.evaluate(EXPLORER_IMAGE)
            status = explorer.locator(".wb-pose-status")
            before_status = status.inner_text()
            handle = explorer.locator(".wb-pose-slider .noUi-handle").first   # the azimuth slider
            at_max = handle.evaluate("e => e.getAttribute('aria-valuenow') === e.getAttribute('aria-valuemax')")
            t = time.perf_counter()
            handle.focus()
            page.keyboard.press("ArrowLeft" if at_max else "ArrowRight")
            page.wait_for_function(
                f"(prev) => {{ const s = document.querySelector('.wb-pose-explorer .wb-pose-status'); "
                f"return s && s.innerText !== prev; }}", arg=before_status, timeout=30_000)
            page.wait_for_function(f"(prev) => ({EXPLORER_IMAGE})() !== prev", arg=before_img, timeout=30_000)
            timings["slider -> re-render"] = time.perf_counter() - t
            after_status = status.inner_text()
            after_img = page.evaluate(EXPLORER_IMAGE)
            explorer.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(500)   # let plotly paint before the screenshot
            page.screenshot(path=str(shot))
            final = page.evaluate(STATE)

            # 09: open it in the same lab, run all cells, the results browser renders
            inject_parameters(jupyter_server["root"] / RESULTS_NOTEBOOK, "TRAIN_MISSING = False")
            t = time.perf_counter()
            page.evaluate(f"() => {{ window.jupyterapp.commands.execute('docmanager:open', "
                          f"{{path: '{RESULTS_NOTEBOOK}', factory: 'Notebook'}}); return true; }}")
            page.wait_for_function(f"{panel_js(RESULTS_NOTEBOOK)} !== null", timeout=60_000)
            page.wait_for_function(f"(() => {{ const p = {panel_js(RESULTS_NOTEBOOK)}; const k = p.sessionContext.session"
                                   f" && p.sessionContext.session.kernel; return k && k.status === 'idle'; }})()",
                                   timeout=60_000)
            timings["09: open until kernel idle"] = time.perf_counter() - t
            t = time.perf_counter()
            state09 = run_all_cells(page, RESULTS_NOTEBOOK, RUN_TIMEOUT_S)
            timings["09: run all cells"] = time.perf_counter() - t
            browser_widget = page.locator(".wb-results-browser")
            if state09["done"] == state09["total"] and not state09["errors"]:
                browser_widget.wait_for(state="attached", timeout=30_000)
                browser_widget.scroll_into_view_if_needed()
                page.wait_for_timeout(300)
            page.screenshot(path=str(shot09))
            results_status = browser_widget.inner_text() if browser_widget.count() else ""
        except Exception:
            page.screenshot(path=str(shot))
            raise
        finally:
            browser.close()
    timings["total (browser part)"] = time.perf_counter() - t_all
    out = REPO / "outputs" / "e2e"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, out / shot.name)
    if shot09.is_file():
        shutil.copy(shot09, out / shot09.name)
    (out / "timings.json").write_text(json.dumps({k: round(v, 2) for k, v in timings.items()}, indent=2))
    print("e2e timings (s):", {k: round(v, 1) for k, v in timings.items()})

    assert after_img != before_img, "the rendered view did not change after moving the slider"
    assert after_status != before_status and "azimuth" in after_status, (before_status, after_status)
    # one keyboard step = one slider step (5 degrees) on the azimuth
    found = [re.search(r"azimuth\s*(-?[\d.]+)", x) for x in (before_status, after_status)]
    assert all(found), (before_status, after_status)
    a0, a1 = (float(m.group(1)) for m in found)
    assert a1 - a0 == pytest.approx(-5.0 if at_max else 5.0), (before_status, after_status)
    assert final["errors"] == [] and final["done"] == final["total"], final
    assert state09["errors"] == [] and state09["done"] == state09["total"] > 0, \
        f"09 did not run cleanly: {state09} (screenshot {shot09})"
    assert "tables shown" in results_status, results_status
    assert not [e for e in console_errors if "plotly" in e.lower() or "widget" in e.lower()], console_errors
