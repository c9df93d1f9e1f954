"""Browser tests: Debian's chromium and chromium-driver driven by Selenium, no browser download.

``make test-browser`` (and ``make test``) install the two Debian packages when they are missing.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1400,1800", "--hide-scrollbars")


def _missing() -> str:
    gone = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        gone.append("the selenium package")
    return ", ".join(gone)


def make_browser() -> tuple[object, Callable[[], None]]:
    """A headless chromium WebDriver with a fresh profile, and the function that ends both."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="meshtrace-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)

    def cleanup() -> None:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    return driver, cleanup


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless chromium with a fresh profile; fails (not skips) when the browser is missing."""
    missing = _missing()
    if missing:
        pytest.fail(f"missing {missing}: run `make test-browser`, which installs chromium and chromium-driver")
    driver, cleanup = make_browser()
    try:
        yield driver
    finally:
        cleanup()
