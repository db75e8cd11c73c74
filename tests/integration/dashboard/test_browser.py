"""The dashboard end to end in a real browser (Debian's Chromium via Playwright) against a real `pier up`.

One platform and one browser for the module, in a throwaway PIER_HOME: the example iris model
(version 1, alias production) and a second version are registered first. The tests run in order,
as one user would: sign in, find the example model, open it, deploy it, try it and see a
prediction, move its alias (the deployment follows it: a new revision), roll back, then a viewer
is refused a change with a 403 page. Every wait polls the page for a condition (Playwright's
expectations), never a fixed sleep. No page may log a Content-Security-Policy violation or a
script error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.integration.dashboard.browser import CHROMIUM, INSTALL_HINT, LAPTOP, NARROW, launch, register_example_models
from tests.integration.platform_support import Platform, pier_down, replica_env, run_platform
from tests.support.procs import ADMIN_HEADERS, ADMIN_TOKEN, wait_until

pytestmark = pytest.mark.slow

DEPLOYMENT = "iris-ui"
READY_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing; {INSTALL_HINT}")
    home = tmp_path_factory.mktemp("dashboard-browser")
    register_example_models(home)
    env = replica_env(42000 + (os.getpid() % 40) * 200)
    try:
        with run_platform(home, env) as p:
            yield p
    finally:
        pier_down(home, env)


@pytest.fixture(scope="module")
def viewer_token(platform: Platform) -> str:
    with httpx.Client(base_url=f"{platform.api}/api/v1", headers=ADMIN_HEADERS, timeout=30) as api:
        created = api.post("/tokens", json={"name": "ui-viewer", "user": "vera"})
        assert created.status_code == 201, created.text
        assert api.put("/projects/default/members/vera", json={"role": "viewer"}).status_code == 200
        return str(created.json()["token"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def problems() -> list[str]:
    """Script errors and CSP violations seen by any page of the module (checked by the last test)."""
    return []


def _watch(page: Page, problems: list[str]) -> Page:
    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"{page.url}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    return page


@pytest.fixture(scope="module")
def admin(browser: Browser, platform: Platform, problems: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport=LAPTOP)
    try:
        yield _watch(context.new_page(), problems)
    finally:
        context.close()


def sign_in(page: Page, platform: Platform, token: str) -> None:
    page.goto(f"{platform.api}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_find_the_example_model_deploy_it_and_try_it(admin: Page, platform: Platform) -> None:
    sign_in(admin, platform, ADMIN_TOKEN)
    expect(admin.get_by_role("status").filter(has_text="Signed in as admin")).to_be_visible()

    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    admin.get_by_label("Name contains").fill("iris")
    admin.get_by_label("Tag").fill("example=true")
    admin.get_by_role("button", name="Filter").click()
    expect(admin.get_by_text("1 of 1 model match the filters")).to_be_visible()
    admin.get_by_role("link", name="iris", exact=True).click()

    expect(admin.get_by_role("heading", level=1)).to_have_text("iris")
    expect(admin.get_by_role("heading", name="Version 2")).to_be_visible()  # the latest is shown first
    versions = admin.get_by_role("table").first
    expect(versions.get_by_role("row", name=re.compile(r"^v1 production"))).to_be_visible()
    admin.get_by_role("link", name="v1", exact=True).click()
    expect(admin.get_by_role("heading", name="Version 1 (production)")).to_be_visible()
    expect(admin.get_by_text("modelpier.examples.iris")).to_be_visible()  # lineage: its source

    deploy = admin.get_by_role("region", name="Deploy")
    deploy.get_by_label("Deployment name").fill(DEPLOYMENT)
    deploy.get_by_label("Model reference").select_option("iris:production")
    deploy.get_by_label("Follow the alias").check()
    deploy.get_by_role("button", name="Deploy").click()

    expect(admin).to_have_url(re.compile(rf"/ui/projects/default/deployments/{DEPLOYMENT}$"))
    expect(admin.get_by_role("status").filter(has_text="revision 1")).to_be_visible()
    expect(admin.locator("#status .badge")).to_have_text("Ready", timeout=READY_TIMEOUT_MS)  # htmx polling
    expect(admin.locator("#status .replicas")).to_have_text("1/1")
    expect(admin.locator("#traffic-state")).to_have_text(re.compile("no traffic data yet|Updated"))
    expect(admin.locator("#logs pre.logs")).to_contain_text("ready", timeout=READY_TIMEOUT_MS)
    docs = admin.get_by_role("link", name=re.compile("Swagger UI"))
    expect(docs).to_have_attribute("href", f"{platform.gateway}/default/{DEPLOYMENT}/docs")

    admin.get_by_role("link", name="Try it").click()
    expect(admin.get_by_label("Model name")).to_have_value("iris")
    expect(admin.get_by_label("Request body (JSON)")).to_have_value(re.compile(r'"input-0".*"shape": \[2, 4\]'))
    admin.get_by_role("button", name="Send request").click()
    expect(admin.locator("#result-status")).to_have_text("200")
    expect(admin.locator("#result-latency")).to_have_text(re.compile(r"^\d+\.\d ms$"))
    expect(admin.locator("#result-body")).to_contain_text('"name": "predict"')


def test_move_the_alias_then_roll_back_the_revision_it_made(admin: Page, platform: Platform) -> None:
    admin.goto(f"{platform.api}/ui/projects/default/models/iris")
    form = admin.get_by_role("region", name="Set or move an alias")
    form.get_by_label("Alias").fill("production")
    form.get_by_label("Points at version").select_option("2")
    form.get_by_role("button", name="Set alias").click()
    expect(admin.get_by_role("status").filter(has_text="Alias iris:production now points at version 2")) \
        .to_be_visible()
    expect(admin.get_by_role("row", name=re.compile(r"^v2 production"))).to_be_visible()

    admin.get_by_role("link", name=f"default/{DEPLOYMENT}").click()
    # The deployment follows the alias: the control plane makes revision 2 (maybe before this page loaded;
    # if after, the polled status offers to reload).
    revision_2, reload = admin.locator("#revision-2"), admin.get_by_role("link", name="reload to see it")
    expect(revision_2.or_(reload)).to_be_visible(timeout=READY_TIMEOUT_MS)
    if reload.is_visible():
        reload.click()
    expect(revision_2).to_contain_text("alias iris:production moved from 1 to 2")
    expect(revision_2).to_contain_text("iris:2")

    admin.get_by_role("button", name="Roll back to revision 1").click()
    expect(admin.get_by_role("status").filter(has_text="Rolling back to revision 1: revision 3 rolls out")) \
        .to_be_visible()
    expect(admin.locator("#revision-3")).to_contain_text("rollback to revision 1")
    expect(admin.locator("#revision-3")).to_contain_text("iris:1")
    revisions = httpx.get(f"{platform.deployment(DEPLOYMENT)}/revisions", headers=ADMIN_HEADERS).json()
    assert [(r["number"], r["resolved"]["main"]) for r in revisions] == [(1, "iris:1"), (2, "iris:2"), (3, "iris:1")]


def _offline(context: BrowserContext) -> list[str]:
    """Refuse every request that leaves this machine, as on a machine without internet; the refused URLs."""
    refused: list[str] = []

    def route(request: Route) -> None:
        if urlsplit(request.request.url).hostname in {"127.0.0.1", "localhost"} or \
                request.request.url.startswith("data:"):
            request.continue_()
        else:
            refused.append(request.request.url)
            request.abort()

    context.route("**/*", route)
    return refused


def test_both_swagger_pages_render_offline_the_replicas_through_the_gateway(browser: Browser,
                                                                            platform: Platform) -> None:
    context = browser.new_context(viewport=LAPTOP)
    refused = _offline(context)
    try:
        page = context.new_page()
        page.goto(f"{platform.api}/docs")  # the control plane's API, vendored Swagger UI (was a CDN: blank)
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("modelpier control plane")
        expect(page.get_by_text("/api/v1/projects/{project}/deployments/{name}", exact=True).first).to_be_visible()

        # The dashboard's "Swagger UI of the replicas" link: the replica's page through the gateway, whose
        # assets and OpenAPI document are under the same /{project}/{deployment}/ prefix.
        page.goto(f"{platform.gateway}/default/{DEPLOYMENT}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("modelpier model server")
        operation = page.locator(".opblock").filter(has_text="/v2/models/{name}/ready").first
        operation.locator(".opblock-summary").click()
        operation.get_by_role("button", name="Try it out").click()
        operation.get_by_placeholder("name").fill("iris")
        operation.get_by_role("button", name="Execute").click()
        # "Try it out" calls the deployment through the gateway, not the gateway's root.
        expect(operation.locator(".request-url")).to_contain_text(
            f"{platform.gateway}/default/{DEPLOYMENT}/v2/models/iris/ready")
        expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("200")
    finally:
        context.close()
    assert refused == []  # nothing wanted the internet


def test_the_replicas_chart_shows_ready_and_desired_and_keeps_a_finished_canary(admin: Page,
                                                                               platform: Platform) -> None:
    name = "charted"
    platform.apply(name, [{"name": "main", "model": "iris:1", "replicas": 2}])
    platform.wait_ready(name, 2)
    canary = httpx.post(f"{platform.deployment(name)}/canary", headers=ADMIN_HEADERS, timeout=30,
                        json={"to": "iris:2", "steps": [50], "intervalSeconds": 600})
    assert canary.status_code == 201, canary.text
    with httpx.Client() as client:
        served: set[str] = set()

        def canary_served() -> bool:
            # Requests one at a time: at most one replica is ever busy, while two run.
            answer = platform.infer(name, client)
            served.add(answer.headers.get("x-pier-predictor", ""))
            return "canary" in served and "main" in served
        wait_until(canary_served, timeout=90, what="both predictors answering")
        aborted = httpx.delete(f"{platform.deployment(name)}/canary", headers=ADMIN_HEADERS, timeout=60)
        assert aborted.status_code == 200, aborted.text
        platform.wait_ready(name, 2, revision=3)
        for _ in range(20):
            assert platform.infer(name, client).status_code == 200

    admin.goto(f"{platform.api}/ui/projects/default/deployments/{name}")
    expect(admin.locator("#traffic-state")).to_have_text(re.compile("Updated"), timeout=READY_TIMEOUT_MS)
    replicas = admin.locator('figure.chart:has([data-chart="replicas"])')
    for label in ("main ready", "main desired", "canary ready", "canary desired"):  # the canary stays charted
        expect(replicas.locator(".u-legend .u-label", has_text=label)).to_have_count(1)
    data = admin.evaluate("""url => fetch(url, {credentials: "same-origin"}).then(r => r.json())""",
                          f"{platform.api}/ui/projects/default/deployments/{name}/traffic.json")
    chart = next(c for c in data["charts"] if c["id"] == "replicas")
    lines = {s["label"]: [v for v in s["values"] if v is not None] for s in chart["series"]}
    assert lines["main desired"][-1] == 2
    assert lines["main ready"][-1] == 2  # 2 ready, though never more than one was busy with a request
    assert max(lines["canary desired"]) == 2  # a copy of main, as canaries are
    assert lines["canary desired"][-1] == 0  # gone now, still on the chart for the window


def test_a_viewer_gets_a_403_page_for_a_change(browser: Browser, platform: Platform, viewer_token: str,
                                                problems: list[str]) -> None:
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = _watch(context.new_page(), problems)
        sign_in(page, platform, viewer_token)
        expect(page.get_by_role("status").filter(has_text="Signed in as vera")).to_be_visible()
        page.goto(f"{platform.api}/ui/projects/default/models/iris")
        form = page.get_by_role("region", name="Set or move an alias")
        form.get_by_label("Alias").fill("staging")
        with page.expect_response(re.compile(r"/alias$")) as answer:
            form.get_by_role("button", name="Set alias").click()
        assert answer.value.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed (403)")
        expect(page.get_by_role("alert")).to_contain_text("'vera' is viewer")
        page.get_by_role("link", name="Back to the previous page").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("iris")
    finally:
        context.close()


def test_unknown_pages_are_404_pages(admin: Page, platform: Platform) -> None:
    answer = admin.goto(f"{platform.api}/ui/projects/default/models/no-such-model")
    assert answer is not None
    assert answer.status == 404
    expect(admin.get_by_role("heading", level=1)).to_have_text("Not found (404)")
    expect(admin.get_by_role("alert")).to_contain_text("no-such-model")


def test_a_narrow_window_and_the_keyboard(browser: Browser, platform: Platform, problems: list[str]) -> None:
    context = browser.new_context(viewport=NARROW)
    try:
        page = _watch(context.new_page(), problems)
        sign_in(page, platform, ADMIN_TOKEN)
        for path in ("/ui/deployments", "/ui/models", f"/ui/projects/default/deployments/{DEPLOYMENT}",
                     "/ui/projects/default"):
            page.goto(platform.api + path)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} scrolls sideways in a narrow window by {overflow}px"
        page.goto(f"{platform.api}/ui/models")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main")).to_be_focused()
    finally:
        context.close()


def test_no_page_logged_a_script_error_or_policy_violation(problems: list[str]) -> None:
    assert problems == []
