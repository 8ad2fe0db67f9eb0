"""The pages (sale, console) in Debian's headless Chromium (scripts/browser.py), against an
API and a worker process of the test's own, like tests/e2e."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from scripts.browser import MISSING, headless_chromium, installed
from scripts.pipeline import Pipeline, running_pipeline
from shared.config import Settings
from tests.browser.page import SalePage, fresh_page, token_mode


@pytest.fixture
async def pipeline(topics: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """Token mode (accounts and the session cookie), API and worker as real processes."""
    async with running_pipeline(token_mode(topics), tmp_path / "logs") as running:
        yield running


@pytest.fixture
async def admin(pipeline: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {pipeline.settings.admin_token}"}
    async with httpx.AsyncClient(base_url=pipeline.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the session; each test clears its cookies."""
    if not installed():
        pytest.fail(MISSING)
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, pipeline: Pipeline, request: pytest.FixtureRequest) -> SalePage:
    return fresh_page(browser, pipeline.url, request.node.name)
