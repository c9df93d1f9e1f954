"""Screenshots of a run for people to look at: the report (summary.html), and executed notebooks as JupyterLab
shows them (the notebook opened in JupyterLab with its saved outputs, nothing re-run).

    .venv/bin/python -m tests.browser.screens runs/latest lab runs/screens/healthy 07_verify 08_troubleshoot

Writes ``summary.png`` and, per notebook, ``<notebook>-top.png`` and ``<notebook>-checks.png`` (scrolled to its
check table) into the output folder.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from .conftest import make_browser
from .jupyter_env import make_root, start_jupyterlab
from .shots import full_page_png


def notebook_shots(driver, lab, stem: str, out: Path) -> None:
    """Open an executed ``<stem>.ipynb`` in JupyterLab; screenshot its top and its (last) check table."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(1400, 1100)
    driver.get(lab.url(f"/lab/tree/{stem}.ipynb"))
    WebDriverWait(driver, 60, 0.25).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-OutputArea-output"))
    time.sleep(1.5)  # let the outputs lay out (images decode) before the picture; nothing is waited on
    driver.save_screenshot(str(out / f"{stem}-top.png"))
    # JupyterLab renders only the cells in view: scroll down to the end, then up to the last check table
    scroller = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer"
    driver.execute_script(f"document.querySelector('{scroller}').scrollTop = 1000")
    time.sleep(1.0)
    driver.save_screenshot(str(out / f"{stem}-commands.png"))
    for _ in range(60):
        at_end = driver.execute_script(
            f"const e = document.querySelector('{scroller}'); if (!e) return true;"
            "const end = e.scrollTop + e.clientHeight >= e.scrollHeight - 2; e.scrollTop += 700; return end;")
        time.sleep(0.2)
        if at_end:
            break
    time.sleep(1.0)
    tables = [t for t in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table")
              if "status" in t.text and "observed" in t.text]
    if tables:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", tables[-1])
        time.sleep(0.5)
    driver.save_screenshot(str(out / f"{stem}-checks.png"))


def main(argv: list[str]) -> int:
    run_dir, env, out, *stems = argv
    run, out = Path(run_dir).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    driver, cleanup = make_browser()
    tmp = Path(tempfile.mkdtemp(prefix="meshtrace-screens-"))
    lab = None
    try:
        print(full_page_png(driver, (run / "summary.html").as_uri(), out / "summary.png", width=1400))
        for stem in stems:
            html = run / env / f"{stem}.html"
            if html.exists():
                full_page_png(driver, html.as_uri(), out / f"{stem}-html.png", width=1400)
        root = tmp / "root"
        jenv = make_root(root, [])
        for stem in stems:
            shutil.copy(run / env / f"{stem}.ipynb", root / "notebooks" / f"{stem}.ipynb")
        lab = start_jupyterlab(root, jenv)
        for stem in stems:
            notebook_shots(driver, lab, stem, out)
    finally:
        if lab is not None:
            lab.stop()
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
