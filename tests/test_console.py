"""The web console in a real browser: Debian's headless Chromium, driven by Playwright, against
``python -m service`` on 127.0.0.1 whose models answer from the fake OpenAI server.

Every test opens a fresh browser context (its own storage, so no key carries over) and fails
on any console error, page error, failed request or 4xx/5xx answer the page did not expect.
Screenshots land in ``reports/console/`` (``SEMROUTE_SCREENSHOT_DIR`` to change it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    CODING_PROMPT,
    COOKING_PROMPT,
    REPO_ROOT,
    SMALL_ROUTES,
    CliBuild,
    write_route_folder,
)
from fake_openai import FakeOpenAI
from playwright.sync_api import Browser, Page, sync_playwright
from prometheus_client.parser import text_string_to_metric_families
from service_process import running_service

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SEMROUTE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless, and nothing that reaches beyond loopback (updates, sync, field trials, QUIC).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("SEMROUTE_SCREENSHOT_DIR") or REPO_ROOT / "reports" / "console")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
API_KEY = "console-test-key"
ADMIN_KEY = "console-test-admin"
TABS = ("playground", "dashboard", "routes")

# The small routes, with models on the fake server: coding's own model fails (HTTP 500), so
# its answers come from the fallback, and every answering model has a price in litellm.
ROUTES: dict[str, Any] = {
    **SMALL_ROUTES,
    "coding": {
        **SMALL_ROUTES["coding"],
        "model": "openai/e500-primary",
        "fallbacks": ["openai/gpt-4.1-mini"],
    },
    "cooking": {**SMALL_ROUTES["cooking"], "model": "openai/gpt-4.1-mini"},
}
ROUTER = {"default_route": "greetings", "scoring": "classifier"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def serve(
    cli_build: CliBuild, fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """``serve(name, **env)``: a live service on the small routes' CLI-built index (the
    models are not part of the fingerprint), stopped at the end of the module."""
    assert cli_build.result.returncode == 0, cli_build.result.stderr
    base = tmp_path_factory.mktemp("console")
    routes = write_route_folder(base / "routes", ROUTES, ROUTER)
    with contextlib.ExitStack() as stack:

        def start(name: str, **env: str) -> str:
            return stack.enter_context(
                running_service(
                    base / f"{name}.log",
                    SEMROUTE_ROUTES_DIR=str(routes),
                    SEMROUTE_INDEX_DIR=str(cli_build.index),
                    SEMROUTE_LLM_API_BASE=fake.api_base,
                    **env,
                )
            )

        yield start


@pytest.fixture(scope="module")
def service(serve: Any) -> str:
    """No keys: every endpoint open, admin endpoints off."""
    return str(serve("open"))


@pytest.fixture(scope="module")
def keyed_service(serve: Any) -> str:
    return str(serve("keyed", SEMROUTE_API_KEYS=API_KEY, SEMROUTE_ADMIN_KEY=ADMIN_KEY))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver")
    with sync_playwright() as playwright:
        # Each launch runs on a fresh temporary profile (user-data-dir) of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Console:
    """One browser tab on the console, with everything that went wrong in it."""

    page: Page
    problems: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def open(self, base_url: str, tab: str = "") -> None:
        self.page.goto(f"{base_url}/ui/" + (f"#{tab}" if tab else ""))

    def ready(self) -> None:
        """Wait until the console has its routes (the key was accepted, if one is needed)."""
        self.page.wait_for_selector("#main:not([hidden])")
        self.page.wait_for_selector("#route-table tbody tr", state="attached")

    def start(self, base_url: str, tab: str = "") -> Page:
        """Open the console and wait until it has its routes; returns the page."""
        self.open(base_url, tab)
        self.ready()
        return self.page

    def route(self, prompt: str, by_keyboard: bool = False) -> dict[str, Any]:
        """Type ``prompt``, route it, and return the decision the page received."""
        self.page.fill("#turn-1-text", prompt)
        with self.page.expect_response("**/route") as answer:
            if by_keyboard:
                self.page.press("#turn-1-text", "Control+Enter")
            else:
                self.page.click("#route-button")
        self.page.wait_for_selector("#decision-panel:not([hidden])")
        return dict(answer.value.json())

    def tab(self, name: str) -> None:
        self.page.click(f"#tab-{name}")
        self.page.wait_for_selector(f"#{name}:not([hidden])")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def fact(self, name: str) -> str:
        return self.page.inner_text(f'#decision [data-fact="{name}"] dd')

    def refreshes(self) -> int:
        return int(self.page.get_attribute("#dashboard", "data-refreshes") or 0)

    def refreshes_on_its_own(self, times: int) -> None:
        """Wait, without a click, until the dashboard has polled ``times`` more times."""
        self.page.wait_for_function(
            "Number(document.querySelector('#dashboard').dataset.refreshes || 0) >= "
            f"{self.refreshes() + times}"
        )

    def refreshed(self) -> None:
        """Click "Refresh now" and wait until that refresh has been drawn."""
        count = self.refreshes()
        self.page.click("#refresh-now")
        self.page.wait_for_function(
            f"Number(document.querySelector('#dashboard').dataset.refreshes || 0) > {count}"
        )


@pytest.fixture
def console(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Console]:
    size = getattr(request, "param", DESKTOP)
    context = browser.new_context(viewport=size)
    context.set_default_timeout(30_000)
    page = context.new_page()
    tab = Console(page)
    page.on("console", lambda m: m.type == "error" and tab.problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: tab.problems.append(f"failed: {r.method} {r.url}"))
    page.on("request", lambda r: tab.requested.append(r.url))
    page.on(
        "response",
        lambda r: (
            r.status >= 400 and tab.problems.append(f"{r.status}: {r.request.method} {r.url}")
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert tab.problems == [], "the page reported problems"


def post(base_url: str, path: str, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(f"{base_url}{path}", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def get(base_url: str, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{base_url}{path}", headers=headers, timeout=30)


# -- loading -----------------------------------------------------------------------------------


def test_every_tab_loads_and_fills_without_a_console_error(service: str, console: Console) -> None:
    routes = get(service, "/console/routes").json()["routes"]
    atlas = get(service, "/console/map").json()

    page = console.start(service)
    assert page.is_visible("#turn-1-text")
    options = page.eval_on_selector_all("#opt-route option", "os => os.map(o => o.value)")
    assert options == ["", *(r["name"] for r in routes)]
    console.shot("tab-playground-1280")

    console.tab("dashboard")
    page.wait_for_selector("#dashboard[data-refreshes]")
    assert page.locator("#tiles li").count() >= 10
    console.shot("tab-dashboard-1280")

    console.tab("routes")
    page.wait_for_selector("#map svg circle")
    rows = page.eval_on_selector_all("#route-table tbody tr", "rs => rs.map(r => r.dataset.route)")
    assert rows == [r["name"] for r in routes]
    counts = page.eval_on_selector_all(
        "#route-table tbody td.num[data-value]:last-child", "cs => cs.map(c => c.textContent)"
    )
    assert counts == [str(r["utterances"]) for r in routes]
    assert page.locator("#map svg circle").count() == atlas["total"] == 17
    pairs = page.eval_on_selector_all("#confusable tbody tr", "rs => rs.map(r => r.dataset.pair)")
    assert pairs == ["|".join(pair["routes"]) for pair in atlas["confusable"]]
    assert len(pairs) == 3  # every pair of three routes
    console.shot("tab-routes-1280")
    assert console.problems == []


# -- playground --------------------------------------------------------------------------------


def test_a_typed_prompt_shows_its_route_and_nearest_examples(
    service: str, console: Console
) -> None:
    page = console.start(service)
    decision = console.route(CODING_PROMPT, by_keyboard=True)

    assert decision["route"] == "coding"
    assert console.fact("route") == "coding"
    assert console.fact("model") == decision["model"] == "openai/e500-primary"
    assert console.fact("method") == decision["method"]
    assert console.fact("decision-id") == decision["decision_id"]
    chosen = page.eval_on_selector_all("#candidates li.chosen", "ls => ls.map(l => l.dataset.name)")
    assert chosen == ["coding"]
    shown = page.eval_on_selector_all(
        "#matches tbody tr",
        "rs => rs.map(r => [r.cells[0].textContent, r.dataset.route, r.cells[2].dataset.value])",
    )
    assert shown == [
        [m["utterance"], m["route"], str(m["similarity"])] for m in decision["matches"]
    ]
    assert shown and shown[0][1] == "coding"
    assert shown[0][0] in SMALL_ROUTES["coding"]["utterances"]
    console.shot("playground")

    # The same prompt lands on the route map, ringed and named.
    with page.expect_response("**/console/locate") as located:
        console.tab("routes")
    assert located.value.ok
    page.wait_for_selector("#map .prompt-mark")
    assert CODING_PROMPT[:30] in (page.text_content("#map .prompt-label") or "")


def test_complete_shows_every_attempt_and_the_total_cost(service: str, console: Console) -> None:
    page = console.start(service)
    page.fill("#turn-1-text", CODING_PROMPT)
    with page.expect_response("**/complete") as answer:
        page.click("#complete-button")
    result = answer.value.json()
    page.wait_for_selector("#completion-panel:not([hidden])")

    assert page.inner_text("#answer") == result["answer"] == "answer from gpt-4.1-mini"
    attempts = page.eval_on_selector_all(
        "#attempts tbody tr",
        "rs => rs.map(r => [r.cells[1].textContent, r.cells[3].textContent,"
        " r.cells[5].dataset.value])",
    )
    failed = result["attempts"][0]["error_type"]
    assert [a[:2] for a in attempts] == [
        ["openai/e500-primary", f"error ({failed})"],
        ["openai/gpt-4.1-mini", "ok"],
    ]
    assert [a[0] for a in attempts] == [a["model"] for a in result["attempts"]]
    total = page.get_attribute('#completion-facts [data-fact="total-cost"]', "data-value")
    assert result["cost_usd"] > 0
    assert float(total or "nan") == pytest.approx(result["cost_usd"])
    assert float(attempts[1][2]) == pytest.approx(result["attempts"][1]["cost_usd"])
    assert page.inner_text('#completion-facts [data-fact="total-cost"] dd').startswith("$")
    console.shot("playground-complete")


# -- dashboard ---------------------------------------------------------------------------------


def stat_at(stats: dict[str, Any], path: list[str]) -> Any:
    for part in path:
        stats = stats[part]
    return stats


def test_after_n_requests_the_dashboard_figures_equal_stats(service: str, console: Console) -> None:
    page = console.start(service, "dashboard")
    page.select_option("#refresh-every", "2000")
    prompts = [CODING_PROMPT, COOKING_PROMPT, "hello there, how are you today"]
    for prompt in prompts:  # N = 6 requests, the page refreshing on its own meanwhile
        post(service, "/route", {"prompt": prompt})
        post(service, "/complete", {"prompt": prompt})
        console.refreshes_on_its_own(1)
    # Two more polls: the second began after the first ended, so after the last request.
    console.refreshes_on_its_own(2)
    stats = get(service, "/stats").json()
    metrics = get(service, "/metrics").text

    shown = page.eval_on_selector_all(
        "#dashboard [data-stat]", "es => es.map(e => [e.dataset.stat, e.dataset.value])"
    )
    assert len(shown) >= 6 + 10 * len(stats["routes"]) + 5 * len(stats["models"])
    for path, value in shown:
        expected = stat_at(stats, json.loads(path))
        if expected is None:
            assert value == "", path
        else:
            assert float(value) == pytest.approx(expected, rel=1e-12), path
    assert stats["requests"] >= len(prompts)
    rows = page.eval_on_selector_all("#per-route tbody tr", "rs => rs.map(r => r.dataset.route)")
    assert rows == list(stats["routes"])
    models = page.eval_on_selector_all("#per-model tbody tr", "rs => rs.map(r => r.dataset.model)")
    assert models == list(stats["models"]) and "openai/e500-primary" in models

    def tile(label: str) -> float:
        value = page.get_attribute(f'#tiles [data-tile="{label}"] .figure', "data-value")
        return float(value or "nan")

    decisions = sum(route["decisions"] for route in stats["routes"].values())
    assert tile("Decisions") == decisions
    assert tile("Feedback") == sum(route["feedback"] for route in stats["routes"].values())
    # The figures the page reads from /metrics agree with Prometheus' own parser.
    totals = {
        family.name: sum(sample.value for sample in family.samples)
        for family in text_string_to_metric_families(metrics)
    }
    assert tile("Fallbacks") == totals["semroute_fallbacks"] >= 1  # coding falls back
    assert tile("Tie-breaker calls") == totals.get("semroute_tiebreaker_calls", 0)
    methods = page.eval_on_selector_all(
        "#methods li",
        "ls => ls.map(l => [l.dataset.name, l.querySelector('.value').dataset.value])",
    )
    assert sum(float(value) for _, value in methods) == decisions
    # The charts drew the traffic between polls: a line per route, completion latency too.
    lines = page.eval_on_selector_all(
        "#chart-routes .legend li, #chart-latency .legend li", "ls => ls.map(l => l.textContent)"
    )
    assert {line.split(":")[0] for line in lines} >= {"coding", "cooking", "greetings", "p50"}
    assert page.locator("#chart-routes svg polyline").count() >= 1
    console.shot("dashboard")


def test_a_feedback_click_reaches_feedback_and_shows_in_stats(
    service: str, console: Console
) -> None:
    page = console.start(service)
    decision = console.route(COOKING_PROMPT)
    before = get(service, "/stats").json()["routes"][decision["route"]]

    page.click("#feedback-wrong")
    page.select_option("#feedback-route", "greetings")
    with page.expect_response("**/feedback") as sent:
        page.click("#feedback-send")
    assert sent.value.status == 200
    assert sent.value.request.post_data_json == {
        "decision_id": decision["decision_id"],
        "rating": 0,
        "correct_route": "greetings",
    }
    # The page writes the result after the response arrives: wait for it, not the response.
    page.wait_for_selector("#feedback-result:has-text('Recorded')")
    assert page.is_disabled("#feedback-send")

    after = get(service, "/stats").json()["routes"][decision["route"]]
    assert after["feedback"] == before["feedback"] + 1
    assert after["corrections"] == before["corrections"] + 1

    console.tab("dashboard")
    console.refreshed()
    cell = f'#per-route tr[data-route="{decision["route"]}"] td[data-stat$=\'"corrections"]\']'
    assert page.get_attribute(cell, "data-value") == str(after["corrections"])


# -- keys --------------------------------------------------------------------------------------


def test_with_keys_set_the_page_asks_for_a_key_and_shows_no_data(
    keyed_service: str, console: Console
) -> None:
    console.open(keyed_service)
    page = console.page
    page.wait_for_selector("#auth:not([hidden])")
    assert page.is_hidden("#main")
    assert page.evaluate("document.activeElement.id") == "api-key"
    console.shot("key-prompt")
    paths = {httpx.URL(url).path for url in console.requested}
    assert all(path.startswith("/ui/") for path in paths), paths
    assert "/ui/config.json" in paths
    assert page.locator("#route-table tbody tr, #per-route tbody tr, #tiles li").count() == 0
    assert get(keyed_service, "/console/routes").status_code == 401

    # A wrong key is refused, and still nothing is shown.
    page.fill("#api-key", "not-the-key")
    with page.expect_response("**/console/routes") as refused:
        page.click("#auth-submit")
    assert refused.value.status == 401
    page.wait_for_selector("#auth-error:has-text('refused')")
    assert page.is_hidden("#main")
    assert all("401" in problem for problem in console.problems), console.problems
    console.problems.clear()

    page.fill("#api-key", API_KEY)
    page.click("#auth-submit")
    console.ready()
    assert page.is_hidden("#auth")
    assert page.is_hidden("#admin-actions")  # no admin key given


def test_reload_shows_only_with_the_admin_key_and_reloads(
    keyed_service: str, console: Console
) -> None:
    console.open(keyed_service, "routes")
    page = console.page
    page.fill("#api-key", API_KEY)
    page.click("#auth-submit")
    console.ready()
    assert page.is_hidden("#reload-button")

    page.click("#keys-button")
    page.fill("#admin-key", ADMIN_KEY)
    with page.expect_response("**/admin/status") as checked:
        page.click("#auth-submit")
    assert checked.value.status == 200
    page.wait_for_selector("#reload-button:visible")
    with page.expect_response("**/admin/reload") as reloaded:
        page.click("#reload-button")
    assert reloaded.value.status == 200
    page.wait_for_selector("#reload-result:has-text('Reloaded')")
    assert "Reloaded: 3 routes, 17 vectors" in page.inner_text("#reload-result")


# -- accessibility -----------------------------------------------------------------------------


def test_keyboard_alone_routes_a_prompt_and_switches_tabs(service: str, console: Console) -> None:
    page = console.start(service)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    for _ in range(12):  # from the skip link, through the tabs, to the prompt
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "turn-1-text":
            break
    assert page.evaluate("document.activeElement.id") == "turn-1-text"
    page.keyboard.type(COOKING_PROMPT)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#decision-panel:not([hidden])")
    assert console.fact("route") == "cooking"

    page.focus("#tab-playground")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#dashboard") and page.is_hidden("#playground")
    assert page.evaluate("document.activeElement.id") == "tab-dashboard"
    page.keyboard.press("End")
    assert page.is_visible("#routes")
    page.keyboard.press("Home")
    assert page.is_visible("#playground")


# Every visible form control has a name; every visible text meets WCAG AA contrast against
# the background it is drawn on (3:1 for large text, 4.5:1 otherwise). Disabled controls are
# exempt, as WCAG exempts them.
AUDIT = """() => {
  const visible = (e) => e.offsetParent !== null || e.getClientRects().length > 0;
  const problems = [];
  for (const e of document.querySelectorAll("input, select, textarea, button")) {
    if (!visible(e)) continue;
    const label = [...(e.labels || [])].map((l) => l.textContent.trim()).join(" ")
      || e.getAttribute("aria-label") || (e.tagName === "BUTTON" ? e.textContent.trim() : "");
    if (!label) problems.push(`no label: ${e.outerHTML.slice(0, 80)}`);
  }
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => v / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (e) => {
    for (let n = e; n; n = n.parentElement) {
      const c = rgb(getComputedStyle(n).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const e of document.querySelectorAll("body *")) {
    if (!visible(e) || e.closest("svg, [disabled]")) continue;
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(e);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const [a, b] = [lum(rgb(style.color)), lum(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}: ${e.tagName} ${e.textContent.slice(0, 40)}`);
    }
  }
  return problems;
}"""


def test_every_control_is_labelled_and_all_text_has_aa_contrast(
    service: str, console: Console
) -> None:
    page = console.start(service)
    page.fill("#turn-1-text", CODING_PROMPT)
    page.click("#complete-button")
    page.wait_for_selector("#completion-panel:not([hidden])")
    page.click("#feedback-wrong")
    problems = {"playground": page.evaluate(AUDIT)}
    for tab in ("dashboard", "routes"):
        console.tab(tab)
        page.wait_for_selector("#dashboard[data-refreshes]", state="attached")
        if tab == "routes":
            page.wait_for_selector("#map svg circle")
        problems[tab] = page.evaluate(AUDIT)
    assert problems == {tab: [] for tab in TABS}


@pytest.mark.parametrize("console", [PHONE], indirect=True, ids=["phone"])
def test_on_a_phone_width_screen_no_tab_scrolls_sideways(service: str, console: Console) -> None:
    page = console.start(service)
    console.route(CODING_PROMPT)
    widths = {}
    for tab in TABS:
        console.tab(tab)
        if tab == "routes":
            page.wait_for_selector("#map svg circle")
        widths[tab] = page.evaluate("document.documentElement.scrollWidth")
        console.shot(f"phone-{tab}")
    assert widths == {tab: PHONE["width"] for tab in TABS}
