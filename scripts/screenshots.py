"""Regenerate the dashboard's screenshots in docs/screenshots/ (`make screenshots`).

Runs the real platform (`pier up`) in a throwaway PIER_HOME with the example iris model and a second
version, sets up a little of everything the pages show (a canary split, a quota, members, some
traffic for the charts), then photographs each main page with the browser setup of the dashboard's
tests (Debian's Chromium, headless, via Playwright), and stops everything with `pier down`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' platform and browser helpers: one setup for both, imported below

from tests.integration.dashboard.browser import LAPTOP, NARROW, launch, register_example_models  # noqa: E402
from tests.integration.platform_support import V2_BODY, Platform, pier_down, replica_env, run_platform  # noqa: E402
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, wait_until  # noqa: E402

TRAFFIC_S = 25.0  # long enough for the charts to show a few points of every series


def prepare(platform: Platform) -> None:
    with httpx.Client(base_url=f"{platform.api}/api/v1", headers=ADMIN_HEADERS, timeout=30) as api:
        for user, role in (("vera", "viewer"), ("eddie", "editor"), ("olga", "owner")):
            assert api.put(f"/projects/default/members/{user}", json={"role": role}).status_code == 200
        quota = {"replicas": 8, "cpu_millis": 8000, "memory_bytes": 8 * 1024**3, "gpus": 0,
                 "storage_bytes": 64 * 1024**2, "deployments": 5}
        assert api.put("/projects/default/quota", json=quota).status_code == 200
    platform.apply("iris", [{"name": "main", "model": "iris:production", "followAlias": True, "weight": 90},
                            {"name": "canary", "model": "iris:2", "weight": 10}])
    platform.wait_ready("iris", 2, timeout=120)


def send_traffic(platform: Platform, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            client.post(f"{platform.gateway}/default/iris/v2/models/iris/infer", json=V2_BODY)
            time.sleep(0.05)  # ~20 requests/s: a readable rate on the chart, not a load test


def _points_with_traffic(platform: Platform) -> int:
    """Points of the charts' series in which the main predictor answered requests."""
    answer = httpx.get(f"{platform.deployment('iris')}/traffic", params={"window": 300, "step": 5},
                       headers=ADMIN_HEADERS, timeout=10)
    if answer.status_code != 200:
        return 0
    series = answer.json().get("series") or []
    return sum(1 for point in series if (point.get("predictors", {}).get("main") or {}).get("requestRate"))


def shoot(page: Page, out: Path, name: str, *, full_page: bool = True) -> None:
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def photograph(platform: Platform, out: Path) -> None:
    ui = f"{platform.api}/ui"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(viewport=LAPTOP).new_page()
            page.goto(f"{ui}/login")
            shoot(page, out, "sign-in", full_page=False)
            page.get_by_label("API token").fill(ADMIN_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
            shoot(page, out, "deployments", full_page=False)
            page.goto(f"{ui}/models")
            shoot(page, out, "models", full_page=False)
            page.goto(f"{ui}/projects/default/models/iris?version=1")
            shoot(page, out, "model")
            page.goto(f"{ui}/projects/default/deployments/iris")
            expect(page.locator(".charts")).to_be_visible(timeout=30_000)
            page.wait_for_function("document.querySelectorAll('.uplot').length === 4")
            shoot(page, out, "deployment")
            page.goto(f"{ui}/projects/default/deployments/iris/try")
            page.get_by_role("button", name="Send request").click()
            expect(page.locator("#result-status")).to_have_text("200")
            shoot(page, out, "try-it")
            page.goto(f"{ui}/projects/default")
            shoot(page, out, "project", full_page=False)
            narrow = browser.new_context(viewport=NARROW).new_page()
            narrow.goto(f"{ui}/login")
            narrow.get_by_label("API token").fill(ADMIN_TOKEN)
            narrow.get_by_role("button", name="Sign in").click()
            narrow.goto(f"{ui}/projects/default/deployments/iris")
            expect(narrow.locator(".charts")).to_be_visible(timeout=30_000)
            shoot(narrow, out, "deployment-narrow", full_page=False)
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots",
                        help="Folder for the PNG files (default: docs/screenshots).")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pier-screenshots-") as tmp:
        home = Path(tmp)
        register_example_models(home)
        env = replica_env(44000 + (os.getpid() % 20) * 200)
        try:
            with run_platform(home, env) as platform:
                prepare(platform)
                traffic = threading.Thread(target=send_traffic, args=(platform, TRAFFIC_S), daemon=True)
                traffic.start()
                wait_until(lambda: _points_with_traffic(platform) >= 4, timeout=TRAFFIC_S,
                           what="a few points of traffic in the charts' window")
                photograph(platform, args.out)
                traffic.join(timeout=TRAFFIC_S + 10)
        finally:
            pier_down(home, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
