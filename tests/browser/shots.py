"""Full-page screenshots of HTML files with headless chromium, for the tests and for looking at reports.

    .venv/bin/python -m tests.browser.shots runs/latest/summary.html runs/browser/summary.png
"""

from __future__ import annotations

import sys
from pathlib import Path


def full_page_png(driver, url: str, out: Path, width: int = 1280) -> dict:
    """Load ``url`` at ``width`` CSS pixels, grow the window to the page's height and save a PNG.

    Returns the page's layout facts: ``scrollWidth`` and ``clientWidth`` (horizontal overflow when the first
    is larger) and ``height``.
    """
    driver.set_window_size(width, 800)
    driver.get(url)
    facts = driver.execute_script(
        "const e = document.documentElement;"
        "return {scrollWidth: e.scrollWidth, clientWidth: e.clientWidth, height: e.scrollHeight};")
    driver.set_window_size(width, min(max(facts["height"] + 140, 400), 12000))
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    return facts


def main(argv: list[str]) -> int:
    """Screenshot each ``HTML PNG`` pair given on the command line."""
    from .conftest import make_browser

    driver, cleanup = make_browser()
    try:
        for html, png in zip(argv[::2], argv[1::2], strict=True):
            facts = full_page_png(driver, Path(html).resolve().as_uri(), Path(png))
            print(f"{png}: {facts}")
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
