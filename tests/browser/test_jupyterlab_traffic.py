"""06_generate_traffic (then 07_verify) opened as notebooks in JupyterLab and run through the UI, as a trainee would.

The test starts its own lab, brings it to the state 06 expects by running 00-05 with the runner, starts
JupyterLab on loopback, opens ``06_generate_traffic.py`` (Jupytext makes it a notebook), picks
Run → Run All Cells from the menu bar, waits for the kernel to finish, and reads the rendered page: the check
table must say PASS and the latency plot must be an image. The screenshot goes to
``runs/browser/06_generate_traffic.png``. 07_verify follows the same way: no failed check, and the trace
waterfall and the dependency graph are images (``runs/browser/07_verify.png``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from .jupyter_env import REPO, make_root, run, start_jupyterlab

pytestmark = [pytest.mark.slow]
NOTEBOOK = "06_generate_traffic"
VERIFY = "07_verify"
SHOTS = REPO / "runs" / "browser"
RUN_DEADLINE_S = 90


def _wait(driver, what: str, condition, deadline_s: float):
    """Poll ``condition(driver)`` until it returns something truthy; fail naming ``what`` at the deadline."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, deadline_s, poll_frequency=0.25).until(condition)
    except Exception as exc:
        raise AssertionError(f"waited {deadline_s:.0f}s for {what}: {type(exc).__name__}") from None


def _click_menu(driver, menu: str, item: str) -> None:
    """Open a menu-bar menu by its label and click one of its items, as a person does."""
    from selenium.webdriver.common.by import By

    bar = _wait(driver, f"the {menu!r} menu", lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text.strip() == menu), None), 20)
    bar.click()
    entry = _wait(driver, f"the {item!r} menu item", lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel") if e.text.strip() == item), None), 10)
    entry.click()


def _finished(driver):
    """The notebook's state when every code cell ran and the kernel is idle, else None."""
    state = driver.execute_script("""
        const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
        if (!nb) return null;
        const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim());
        const busy = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
        const cells = nb.querySelectorAll('.jp-CodeCell');
        const last = cells[cells.length - 1];
        return {prompts: prompts,
                status: busy ? busy.getAttribute('data-status') : null,
                lastOutput: last ? last.querySelectorAll('.jp-OutputArea-output').length : 0};
    """)
    if not state or not state["prompts"]:
        return None
    ran = all(p.startswith("[") and p not in ("[ ]:", "[*]:") for p in state["prompts"])
    idle = state["status"] in (None, "idle")
    return state if ran and idle and state["lastOutput"] > 0 else None


def _run_in_ui(browser, lab, stem: str, check_id: str):
    """Open ``<stem>.py`` as a notebook, Run → Run All Cells, wait, screenshot; returns the check table rows
    ``{check id: status}`` of the table that holds ``check_id``, and the rendered PNG images."""
    from selenium.webdriver.common.by import By

    browser.get(lab.url(f"/lab/tree/{stem}.py"))
    _wait(browser, f"the notebook view of {stem}.py",
          lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook .jp-CodeCell"), 60)
    _wait(browser, "the kernel to start", lambda d: d.find_elements(
        By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']"), 60)
    # focus this notebook (JupyterLab may have restored other tabs), as a person clicks into it first
    tab = _wait(browser, f"the tab of {stem}.py", lambda d: next(
        (t for t in d.find_elements(By.CSS_SELECTOR, ".lm-DockPanel-tabBar .lm-TabBar-tab")
         if t.text.strip().startswith(f"{stem}.py")), None), 20)
    tab.click()
    _wait(browser, f"{stem}.py to be the current tab", lambda d: "lm-mod-current" in (tab.get_attribute("class") or ""), 10)
    t0 = time.monotonic()
    _click_menu(browser, "Run", "Run All Cells")
    try:
        _wait(browser, f"every cell of {stem} to run and the kernel to go idle", _finished, RUN_DEADLINE_S)
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / f"{stem}.png"))
    print(f"{stem}: Run All Cells took {time.monotonic() - t0:.1f}s")
    panel = browser.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden)")
    tracebacks = [e.text for e in panel.find_elements(By.CSS_SELECTOR, ".jp-RenderedText") if "Traceback" in e.text]
    tables = [t for t in panel.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table") if check_id in t.text]
    if tables:
        browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", tables[-1])
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{stem}.png"))
    assert not tracebacks, f"a cell of {stem} raised:\n{tracebacks[0][:2000]}"
    assert tables, f"no check table with {check_id} was rendered in {stem}"
    statuses = {}
    for row in tables[-1].find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        statuses[cells[1].find_element(By.CSS_SELECTOR, "code").text.strip()] = cells[0].text.strip().lower()
    images = [i for i in panel.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")
              if (i.get_attribute("src") or "").startswith("data:image/png") and i.size["width"] > 100]
    return statuses, images


@pytest.mark.timeout(300)
def test_run_all_cells_of_06_then_07_in_jupyterlab(tmp_path: Path, browser) -> None:
    root = tmp_path / "root"
    env = make_root(root, [NOTEBOOK, VERIFY])
    state = root / ".meshlab"
    run([sys.executable, "-m", "meshlab", "up", "--state-dir", str(state), "--ready-delay", "0.1"], env, 90)
    lab = None
    try:
        run([sys.executable, "-m", "meshtrace", "run", "--env", "lab", "--root", str(root),
             "--notebooks-dir", str(REPO / "notebooks"), "--runs-dir", str(root / "runs"),
             "--notebooks", "00-05", "--no-troubleshoot"], env, 150)
        lab = start_jupyterlab(root, env)

        statuses, images = _run_in_ui(browser, lab, NOTEBOOK, "traffic.sent")
        assert statuses.get("traffic.sent") == "pass", statuses
        assert images, "no latency plot image was rendered"
        assert (SHOTS / f"{NOTEBOOK}.png").stat().st_size > 10_000

        statuses, images = _run_in_ui(browser, lab, VERIFY, "traces.whole")
        failed = {k: v for k, v in statuses.items() if v == "fail"}
        assert not failed and statuses.get("traces.whole") == "pass", statuses
        assert len(images) >= 2, "the trace waterfall and the dependency graph should be images"
    finally:
        if lab is not None:
            lab.stop()
        run([sys.executable, "-m", "meshlab", "down", "--state-dir", str(state)], env, 90)
