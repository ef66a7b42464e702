"""What the browser tests share: the running stack, officer tokens, and ``Screen`` (one tab: axe-core,
no sideways scrolling at 360 px, no CSP violation, screenshots at 1280 and 360 px into ``docs/console/``).
The fixtures that build them are in ``conftest.py``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.processes import TEST_AUTH_SECRET, ServiceProcess

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "console"
WIDTHS = (1280, 360)
SERIOUS = ("serious", "critical")

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""


class Screen:
    """One officer's browser tab; ``check(name)`` runs the checks on the current screen and saves it."""

    def __init__(self, page: Any, base_url: str, axe_source: str) -> None:
        self.page, self.base_url, self.axe_source = page, base_url, axe_source
        self.csp_violations: list[str] = []
        page.on("console", lambda message: self._console(message.text))
        page.set_default_timeout(30_000)

    def _console(self, text: str) -> None:
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp_violations.append(text)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def check(self, name: str) -> None:
        page = self.page
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900 if width > 360 else 780})
            if page.evaluate("typeof window.axe") == "undefined":
                page.evaluate(self.axe_source)  # through DevTools: the page's own CSP stays strict
            violations = [v for v in page.evaluate(AXE_RUN) if v["impact"] in SERIOUS]
            assert violations == [], f"{name} at {width} px: {violations}"
            if width == 360:
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= 360, f"{name} scrolls sideways at 360 px ({scroll} px wide)"
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT_DIR / f"{name}-{width}.png"), full_page=True, animations="disabled",
                            caret="hide")
        page.set_viewport_size({"width": 1280, "height": 900})
        assert self.csp_violations == [], self.csp_violations

    def sign_in(self, token: str) -> None:
        self.goto("/login")
        self.page.fill("#f-token", token)
        self.page.click("button[type=submit] >> text=Masuk")
        self.page.wait_for_url(self.base_url + "/")


class ConsoleStack:
    def __init__(self, console: ServiceProcess, services: dict[str, ServiceProcess]) -> None:
        self.console, self.services = console, services

    @property
    def url(self) -> str:
        return self.console.base_url


def token_for(role: str, *scope: str, officer_id: str, ttl_seconds: float = 3600) -> str:
    return issue_token(Officer(officer_id=officer_id, role=OfficerRole(role), scope=scope), TEST_AUTH_SECRET,
                       ttl=dt.timedelta(seconds=ttl_seconds))
