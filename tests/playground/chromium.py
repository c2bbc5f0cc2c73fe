"""Headless Debian Chromium for the browser test, driven through Selenium and Debian's chromedriver.

Selenium talks to /usr/bin/chromedriver on a loopback port; nothing is downloaded (the driver and browser
paths are given, so Selenium Manager is never asked). Chromium's flags keep it off the network and out of
any sandbox this container cannot provide. A missing browser is a test failure, never a skip: CI installs
`chromium` and `chromium-driver` (Makefile APT_NEEDS).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@contextmanager
def headless_chromium(user_data_dir: Path) -> Iterator[object]:
    """A Selenium Chrome driver on a fresh profile in `user_data_dir`; quits on exit."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's browser with "
            "`apt-get install chromium chromium-driver` (`make test` does it via APT_NEEDS)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
