"""summary.html as a person sees it, rendered by headless chromium: coloured status, the cause and the fixes
on top, nothing running off the page. Screenshot: ``runs/browser/summary-failing.png``. Costs ~3 s."""

from __future__ import annotations

from pathlib import Path

from meshtrace.checks import STATUS_COLOURS, Check
from meshtrace.report import write_report

from .jupyter_env import REPO
from .shots import full_page_png

LONG = "productpage.default.svc.cluster.local:9080/productpage," * 12


def _rows() -> list[Check]:
    return [
        Check("lab", "01_install_collector", "collector.ready", "the collector is ready", "pass", True,
              "opentelemetry-collector: 1/1 available", "1/1 available"),
        Check("lab", "07_verify", "traces.services-reported", "every expected service reported spans", "fail", True,
              LONG, "istio-ingressgateway.istio-system, productpage.default", "run 08_troubleshoot"),
        Check("lab", "08_troubleshoot", "troubleshoot.diagnosis", "the most likely cause", "warn", False,
              "sampling-zero (82%)", "nothing wrong", "--set telemetry.sampling=100 (then rerun 03_enable_tracing)"),
        Check("lab-http", "07_verify", "traces.services-reported", "every expected service reported spans", "pass",
              True, "5 services", "5 services"),
        Check("lab-http", "08_troubleshoot", "notebook.executed", "the notebook ran", "skip", True, "not run"),
    ]


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, 1)"


def test_failing_summary_reads_at_a_glance(tmp_path: Path, browser) -> None:
    from selenium.webdriver.common.by import By

    paths = write_report(tmp_path, _rows())
    shot = REPO / "runs" / "browser" / "summary-failing.png"
    facts = full_page_png(browser, paths["html"].resolve().as_uri(), shot)
    assert facts["scrollWidth"] <= facts["clientWidth"], f"the page scrolls sideways: {facts}"

    verdict = browser.find_element(By.CSS_SELECTOR, ".verdict")
    assert verdict.text.startswith("FAILED") and verdict.value_of_css_property("color") == _rgb(STATUS_COLOURS["fail"])
    cause = browser.find_element(By.CSS_SELECTOR, ".cause")
    assert "sampling-zero" in cause.text and "telemetry.sampling=100" in cause.text and cause.is_displayed()

    problems = browser.find_elements(By.CSS_SELECTOR, "table.checks")[0]
    first = problems.find_elements(By.CSS_SELECTOR, "tbody tr")[0]
    cells = first.find_elements(By.CSS_SELECTOR, "td")
    assert cells[0].text == "FAIL" and cells[0].value_of_css_property("color") == _rgb(STATUS_COLOURS["fail"])
    assert cells[-1].text == "run 08_troubleshoot" and cells[-1].is_displayed()
    for cell in cells:  # long values wrap inside their cell: none is wider than its box
        assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", cell), cell.text
    assert shot.stat().st_size > 10_000


def test_pictures_are_readable_and_open_full_size_and_blocked_reads_as_blocked(tmp_path: Path, browser) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    env = tmp_path / "lab"
    env.mkdir()
    Image.new("RGB", (1600, 500), "white").save(env / "trace_waterfall.png")
    rows = [*_rows()[:2], Check("lab", "07_verify", "traces.whole", "each sampled request forms one whole trace",
                                "blocked", True, "blocked by traces.services-reported")]
    paths = write_report(tmp_path, rows, answers=False)
    facts = full_page_png(browser, paths["html"].resolve().as_uri(), REPO / "runs" / "browser" / "summary-drill.png")
    assert facts["scrollWidth"] <= facts["clientWidth"], facts
    img = browser.find_element(By.CSS_SELECTOR, ".pics img")
    assert img.size["width"] >= 900, f"the picture is a thumbnail too small to read: {img.size}"
    assert img.find_element(By.XPATH, "..").get_attribute("href").endswith("lab/trace_waterfall.png")
    blocked = next(td for td in browser.find_elements(By.CSS_SELECTOR, "td.st") if td.text.startswith("BLOCKED"))
    assert blocked.value_of_css_property("color") == _rgb(STATUS_COLOURS["blocked"])
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "blocked by traces.services-reported" in page
    assert "run 08_troubleshoot" not in page and "sampling-zero" not in page, "a drill report shows no answer"
