"""The pages as the tests see them: what a buyer or an operator reads and clicks, waited on with
WebDriverWait (never a sleep), each state saved as a PNG and checked with axe-core."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from shared.config import Settings

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SECRET = "a-browser-test-secret-long-enough-0123456789"
WAIT_S = 20.0
PASSWORD = "correct horse battery"
# Violations of these impacts fail a test; minor and moderate ones are printed.
FAILING_IMPACTS = ("serious", "critical")
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]})
  .then((results) => done(results.violations))
  .catch((error) => done([{id: "axe-error", impact: "critical", help: String(error), nodes: []}]));
"""


class SalePage:
    def __init__(self, driver: WebDriver, base_url: str, shots: Path, test: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots = shots
        self.test = test

    # ------------------------------------------------------------ looking
    def open(self, event_id: int) -> None:
        self.visit(f"/?event={event_id}")

    def visit(self, path: str) -> None:
        """Opens a page of the API and waits until its script says it is ready."""
        self.driver.get(f"{self.base_url}{path}")
        self.wait(
            lambda: self.driver.execute_script("return document.documentElement.dataset.ready")
        )
        # Set once: it is gone if anything reloads the page.
        self.driver.execute_script("window.sameDocument = true;")

    def still_same_document(self) -> bool:
        return bool(self.driver.execute_script("return window.sameDocument === true;"))

    def el(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.el(css).text

    def wait(self, condition: Any, timeout_s: float = WAIT_S, what: str = "") -> Any:
        return WebDriverWait(self.driver, timeout_s).until(lambda _: condition(), what)

    def text_if_any(self, css: str) -> str:
        """The text of the element at `css`, or "" while there is none (drawn later)."""
        found = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""

    def wait_text(self, css: str, expected: str, timeout_s: float = WAIT_S) -> str:
        """Waits until the element at `css` exists and shows `expected` (a part of its
        text)."""
        self.wait(
            lambda: expected in self.text_if_any(css),
            timeout_s,
            f"{css} never showed {expected!r} (last: {self.text_if_any(css)!r})",
        )
        return self.text(css)

    def seat(self, label: str) -> WebElement:
        return self.el(f'rect[data-label="{label}"]')

    def seat_state(self, label: str) -> str:
        classes = (self.seat(label).get_attribute("class") or "").split()
        return next(c for c in classes if c in ("free", "held", "sold"))

    # ------------------------------------------------------------ acting
    def choose(self, label: str) -> None:
        """Clicks a free seat and waits until the page lists it as chosen."""
        self.seat(label).click()
        self.wait_text("#chosen", label)

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        for field, value in (("#email", email), ("#password", password)):
            self.el(field).clear()
            self.el(field).send_keys(value)
        self.el("#sign-in").click()
        self.wait_text("#who", email)

    def register(self, email: str, password: str = PASSWORD) -> None:
        self.el("#email").send_keys(email)
        self.el("#password").send_keys(password)
        self.el("#register").click()
        self.wait_text("#who", email)

    # ------------------------------------------------------------ evidence
    def screenshot(self, name: str) -> Path:
        """The whole page as PNG under test-artifacts/screenshots/ (through DevTools, so
        beyond the viewport too)."""
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path = self.shots / f"{self.test}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {path}")
        return path

    def accessibility_violations(self) -> list[str]:
        """axe-core's serious and critical violations in the page as it is now."""
        self.driver.execute_script(AXE)
        violations = self.driver.execute_async_script(RUN_AXE)
        failing = []
        for v in violations:
            where = [n.get("target") for n in v.get("nodes", [])][:3]
            line = f"{v['impact']}: {v['id']}: {v['help']} at {where}"
            if v["impact"] in FAILING_IMPACTS:
                failing.append(line)
            else:
                print(f"axe {line}")
        return failing

    def check(self, name: str) -> None:
        """A screenshot of this state, and no serious accessibility violation in it."""
        self.screenshot(name)
        assert self.accessibility_violations() == [], name


def token_mode(settings: Settings) -> Settings:
    """The pages' tests run accounts and the session cookie (token mode), no sign-in limit."""
    return msgspec.structs.replace(
        settings, buyer_auth="token", jwt_secret=SECRET, rate_limit_auth_per_s=0
    )


def fresh_page(driver: WebDriver, base_url: str, test: str) -> SalePage:
    """The session's browser with no cookies and its own window size again."""
    driver.delete_all_cookies()
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return SalePage(driver, base_url, SCREENSHOTS, test)
