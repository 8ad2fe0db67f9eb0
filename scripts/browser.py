"""Debian's Chromium, headless, through Debian's chromedriver: the browser tests and the
benchmark's page-load phase drive it with Selenium. Both paths are given, so Selenium
Manager has nothing to look up or download."""

from __future__ import annotations

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = (
    "chromium and chromium-driver are missing: TICKETS_STACK_BROWSER=1 scripts/stack install "
    "(as root), or apt-get install chromium chromium-driver"
)


def installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def headless_chromium(width: int = 1280, height: int = 1000) -> webdriver.Chrome:
    if not installed():
        raise RuntimeError(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", f"--window-size={width},{height}", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")  # small /dev/shm on CI machines
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with it
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
