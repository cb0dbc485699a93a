"""The player page end to end, in headless Chromium (the system's, driven by Playwright)
against a real gateway, a real Celery worker and the LLM narrator on the tests' local
OpenAI-compatible server, which streams its words slowly enough to catch a turn mid-way."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from tests.support.fake_llm import GATE_AFTER_CHUNKS, FakeLLM, fake_llm
from tests.support.processes import CeleryWorker, Gateway, service_environment

# A test may start a worker and a gateway (up to 90 s on a busy machine) and then waits on
# turns in the browser: the suite's 120 s per test is too short for the sum of those bounds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SCREENSHOT = Path(__file__).parents[2] / "docs" / "player-page.png"
# Records the text of the turn being told every time the page changes it: what the player
# saw streaming in.
WATCH_STREAM = """() => {
  window.streamed = [];
  new MutationObserver(() => {
    const item = document.querySelector("#story li.pending");
    const told = item && item.querySelector(".told");
    if (told && told.dataset.raw) window.streamed.push([item.dataset.turn, told.dataset.raw]);
  }).observe(document.getElementById("story"), {subtree: true, childList: true, attributes: true});
}"""
# Counts the story stream's openings, from a listener registered before the page's own.
COUNT_STREAM_OPENINGS = """(() => {
  const Native = window.EventSource;
  window.streamOpenings = 0;
  window.EventSource = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { window.streamOpenings += 1; });
    }
  };
})();"""


def chromium_binary() -> str | None:
    named = os.environ.get("CHROMIUM")
    if named:
        return named
    return next(
        (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))),
        None,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    if binary is None:
        pytest.fail(
            "The player page tests drive the system's Chromium: install it (Debian/Ubuntu: "
            "`sudo apt-get install chromium`; ./scripts/test does so where it can)."
        )
    # Chromium's sandbox cannot run as root (containers, CI).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with fake_llm() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    redis_url: str, llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One worker and one gateway for the module's tests on the LLM narrator: starting them
    is most of a test's time, and each test plays a new adventure of its own. (A test that
    stops the gateway starts it again.)"""
    workdir = tmp_path_factory.mktemp("player-page")
    env = {
        **service_environment(redis_url, workdir),
        "NARRATOR": "llm",
        # A chunk every 0.15 s, and held half-way for as long as a test keeps `llm.gate` shut.
        "LLM_MODEL": "openai/gated",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "sk-local-test",
        "LLM_RETRIES": "0",
        "LLM_TIMEOUT": "180",
    }
    worker = CeleryWorker(env, workdir)
    gateway = Gateway(env, workdir)
    try:
        worker.start()
        worker.wait_ready()
        gateway.start()
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.stop()
        worker.stop()


@pytest.fixture
def held_llm(llm: FakeLLM) -> Iterator[FakeLLM]:
    """The narrator stops a few words into its reply until the test opens `gate`."""
    llm.gate.clear()
    try:
        yield llm
    finally:
        llm.gate.set()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if _fault(message) else None)
    yield opened
    context.close()
    # A script error or a CSP refusal ("Refused to load…") shows up here.
    assert not errors, errors


def _fault(message: ConsoleMessage) -> bool:
    # Failed requests are the drills of these tests (a dropped gateway, an injected 503).
    return message.type == "error" and not message.text.startswith("Failed to load resource")


def adventure(page: Page) -> dict[str, Any]:
    stored = page.evaluate("() => JSON.parse(localStorage.getItem('pocket-portals:adventure'))")
    assert stored, "the page keeps no adventure"
    return dict(stored)


def turn_result(gateway: Gateway, page: Page, turn_id: str) -> dict[str, Any]:
    stored = adventure(page)
    response = httpx.get(
        f"{gateway.url}/sessions/{stored['sessionId']}/turns/{turn_id}",
        headers={"Authorization": f"Bearer {stored['token']}"},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["status"] == "completed"
    return dict(response.json()["result"])


def wait_told(page: Page, count: int) -> str:
    """Wait until the story holds `count` finished turns; the newest one's turn id."""
    page.wait_for_function(
        "n => document.querySelectorAll('#story li:not(.pending)').length >= n"
        " && !document.querySelector('#story li.pending')",
        arg=count,
        timeout=90_000,
    )
    return str(page.locator("#story li").nth(count - 1).get_attribute("data-turn"))


def told_text(page: Page, turn_id: str) -> str:
    return page.evaluate(
        "id => document.querySelector(`#story li[data-turn='${id}'] .told`).dataset.raw",
        turn_id,
    )


def test_three_turns_by_button_and_by_typing_stream_the_whole_story(
    gateway: Gateway, page: Page, request: pytest.FixtureRequest
) -> None:
    page.goto(gateway.url)
    page.get_by_role("button", name="Begin a new adventure").click()
    page.evaluate(WATCH_STREAM)

    page.get_by_role("button", name="1. Play Brannoc, a dwarf fighter").click()
    first = wait_told(page, 1)
    page.wait_for_function(
        "() => document.getElementById('hero-name').textContent === 'Brannoc'", timeout=30_000
    )
    # Each agent's words under its name: the innkeeper speaks when a hero is made.
    innkeeper = page.locator(f"#story li[data-turn='{first}'] p[data-speaker='innkeeper']")
    assert innkeeper.locator(".speaker").inner_text().lower() == "innkeeper"

    page.locator("#choices button").first.click()  # a quest, by its button
    second = wait_told(page, 2)
    assert page.locator("#quest .quest-title").inner_text()

    page.get_by_label("Or say what you do").fill("Look around")
    page.keyboard.press("Enter")
    third = wait_told(page, 3)

    for turn_id in (first, second, third):
        narrative = turn_result(gateway, page, turn_id)["narrative"]
        assert told_text(page, turn_id) == narrative
    # What streamed in for the last turn, delta by delta, ended as its whole narrative.
    streamed = [text for turn, text in page.evaluate("() => window.streamed") if turn == third]
    last = turn_result(gateway, page, third)["narrative"]
    assert len({text for text in streamed if last.startswith(text)}) > 3  # it grew in pieces
    # Into the narrative (its last piece may land after the long poll has ended the turn).
    longest = max(streamed, key=len)
    assert last.startswith(longest) and len(longest) > len(last) // 2
    assert page.locator("#story li").count() == 3
    assert page.locator("#choices button").count() >= 1


def test_the_offline_story_reads_in_the_page(
    worker_factory: Callable[..., CeleryWorker],
    gateway_factory: Callable[..., Gateway],
    page: Page,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    worker_factory()
    # A short adventure, so that the test also plays it to its end; seeded, so that it has a
    # fight (seed 3: the first choices meet one on the ninth turn).
    gateway = gateway_factory({"MAX_TURNS": "5"})
    page.route(
        f"{gateway.url}/sessions",
        lambda route: (
            route.continue_(post_data='{"seed": 3}')
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.goto(gateway.url)
    page.get_by_role("button", name="Begin a new adventure").click()
    page.get_by_role("button", name="4. Create my own hero").click()
    wait_told(page, 1)
    page.get_by_label("Or say what you do").fill("I'm Kestrel, an elf rogue")
    page.keyboard.press("Enter")
    wait_told(page, 2)
    page.get_by_role("button", name="1. A deserter from a cruel lord's army").click()
    wait_told(page, 3)
    # The panel follows the state, which the page reads again once the turn is told.
    page.wait_for_function(
        "() => document.getElementById('hero-name').textContent === 'Kestrel'", timeout=30_000
    )
    page.locator("#choices button").first.click()
    fourth = wait_told(page, 4)
    # Each turn shows what the player said, even one whose end came before its POST's answer
    # (filled in once that answer, or the history, arrives: moments later).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#story .said')].every(s => s.textContent.trim())",
        timeout=30_000,
    )
    # The narrator's and the other agents' words, each a paragraph of its own.
    paragraphs = page.locator(f"#story li[data-turn='{fourth}'] .told p")
    assert paragraphs.count() >= 1
    assert told_text(page, fourth) == turn_result(gateway, page, fourth)["narrative"]
    # README's picture of the page (./scripts/test --update-golden rewrites it).
    target = SCREENSHOT if request.config.getoption("--update-golden") else tmp_path / "page.png"
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    pictures = DOCS if request.config.getoption("--update-golden") else tmp_path
    check_themes_and_reading_mode(page, pictures)
    play_to_the_end(page, told=4, pictures=pictures)
    check_the_last_buttons(page, gateway)


DOCS = SCREENSHOT.parent
THEME_PAPER = {
    "parchment": "rgb(246, 236, 214)",
    "light": "rgb(255, 255, 255)",
    "dark": "rgb(15, 20, 32)",
    "mono": "rgb(255, 255, 255)",
}


def paper(page: Page) -> str:
    return str(page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor"))


def check_themes_and_reading_mode(page: Page, pictures: Path) -> None:
    """Each theme applies, is remembered over a reload, and the system's own choice comes back
    with "Follow the system"; the reading mode folds the panel away and is remembered."""
    assert page.evaluate("() => document.documentElement.dataset.theme") is None
    for theme, colour in THEME_PAPER.items():
        page.select_option("#theme", theme)
        page.wait_for_function(f"() => document.documentElement.dataset.theme === '{theme}'")
        assert paper(page) == colour
        page.screenshot(path=str(pictures / f"page-theme-{theme}.jpg"), type="jpeg", quality=70)
    page.reload()
    page.wait_for_function("() => document.documentElement.dataset.theme === 'mono'")
    assert page.locator("#theme").input_value() == "mono"
    page.select_option("#theme", "system")
    page.wait_for_function("() => document.documentElement.dataset.theme === undefined")
    assert paper(page) == THEME_PAPER["parchment"]  # headless Chromium's system is light
    reading = page.get_by_role("button", name="Reading mode")
    reading.click()
    assert reading.get_attribute("aria-pressed") == "true"
    assert page.locator("#panel").is_hidden()
    page.reload()
    page.wait_for_function("() => document.documentElement.classList.contains('reading')")
    page.get_by_role("button", name="Reading mode").click()
    page.locator("#panel").wait_for(state="visible", timeout=30_000)


def play_to_the_end(page: Page, told: int, pictures: Path) -> None:
    """The first choice, turn after turn, until the tale is told (MAX_TURNS, a last fight,
    the epilogue); the first fight's dice are checked and pictured on the way."""
    pictured = False
    for _ in range(5 + 12 + 2):
        page.locator("#choices button:not(:disabled)").first.click()
        told += 1
        wait_told(page, told)
        page.wait_for_function(
            "() => document.querySelector('#choices button:not(:disabled), .the-end')",
            timeout=30_000,
        )
        if not pictured and page.locator("#combat-log .die").count():
            check_a_fight(page, pictures)
            pictured = True
        if page.locator(".the-end").count():
            assert pictured, "the seeded adventure had no fight"
            return
    pytest.fail("the adventure did not end")


def check_a_fight(page: Page, pictures: Path) -> None:
    """Both sides' health, and the dice of each roll as they fell."""
    assert page.locator("#health").is_visible() and page.locator("#foe-health").is_visible()
    foe = page.locator("#foe-health-text").inner_text()
    assert " / " in foe
    label = page.locator("#combat-log .die").first.get_attribute("aria-label") or ""
    assert label.startswith("d") and " showing " in label
    page.screenshot(path=str(pictures / "page-fight.jpg"), type="jpeg", quality=70)


def check_the_last_buttons(page: Page, gateway: Gateway) -> None:
    the_end = page.get_by_role("group", name="After the tale")
    page.get_by_role("button", name="View character sheet").click()
    page.wait_for_function("() => document.activeElement.id === 'hero-name'", timeout=10_000)
    # The story, as the owner's Markdown: shown to copy, download or share.
    the_end.get_by_role("button", name="Share story").click()
    page.wait_for_function(
        "() => document.getElementById('story-dialog').open"
        " && document.getElementById('story-text').value.startsWith('# The tale of Kestrel')",
        timeout=30_000,
    )
    stored = adventure(page)
    exported = httpx.get(
        f"{gateway.url}/sessions/{stored['sessionId']}/story",
        headers={"Authorization": f"Bearer {stored['token']}"},
        timeout=10,
    ).text
    assert page.locator("#story-text").input_value() == exported
    assert "*Pocket Portals. The tale is told.*" in exported
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "pocket-portals-kestrel.md"
    page.get_by_role("button", name="Close").click()
    # A new adventure, once this one is forgotten (the player confirms it).
    page.once("dialog", lambda dialog: dialog.accept())
    the_end.get_by_role("button", name="Begin a new adventure").click()
    page.wait_for_function(
        "old => { const now = JSON.parse(localStorage.getItem('pocket-portals:adventure'));"
        " return now && now.sessionId !== old; }",
        arg=stored["sessionId"],
        timeout=30_000,
    )
    page.get_by_role("button", name="4. Create my own hero").wait_for(timeout=30_000)


PENDING_TEXT = "() => document.querySelector('#story li.pending .told')?.dataset.raw || ''"


def pending_text(page: Page) -> str:
    return str(page.evaluate(PENDING_TEXT))


def wait_pending_text(page: Page) -> str:
    page.wait_for_function(f"() => ({PENDING_TEXT})().length > 0", timeout=90_000)
    return pending_text(page)


def test_a_reload_mid_turn_loses_nothing(gateway: Gateway, held_llm: FakeLLM, page: Page) -> None:
    page.goto(gateway.url)
    page.get_by_role("button", name="Begin a new adventure").click()
    page.get_by_role("button", name="3. Play Pip, a halfling rogue").click()
    before = wait_pending_text(page)
    page.reload()
    # Still mid-turn (the narrator is held): the page tells the turn again from its first word.
    after = wait_pending_text(page)
    assert page.locator("#story li.pending").count() == 1
    assert after.startswith(before) or before.startswith(after), (before, after)
    held_llm.gate.set()
    turn_id = wait_told(page, 1)
    narrative = turn_result(gateway, page, turn_id)["narrative"]
    assert narrative.startswith(after)
    assert told_text(page, turn_id) == narrative
    assert page.locator("#story li").count() == 1  # told once, not twice
    assert page.locator("#hero-name").inner_text() == "Pip"


def test_a_dropped_connection_is_resumed(gateway: Gateway, held_llm: FakeLLM, page: Page) -> None:
    page.add_init_script(COUNT_STREAM_OPENINGS)
    page.goto(gateway.url)
    page.get_by_role("button", name="Begin a new adventure").click()
    page.evaluate(WATCH_STREAM)
    page.get_by_role("button", name="2. Play Elowen, an elf wizard").click()
    wait_pending_text(page)
    # The gateway dies mid-turn and comes back; the page reconnects by itself. (Killed: a
    # SIGTERM would make it wait out the page's open long poll, up to LONG_POLL_MAX.)
    gateway.kill()
    gateway.start()
    gateway.wait_ready()
    page.wait_for_function("() => window.streamOpenings >= 2", timeout=90_000)
    held_llm.gate.set()
    turn_id = wait_told(page, 1)
    narrative = turn_result(gateway, page, turn_id)["narrative"]
    assert told_text(page, turn_id) == narrative
    # The rest of the narration reached the page on the resumed stream: the streamed text
    # grew past the pieces told before the drop (its last piece may land after the long
    # poll has ended the turn).
    longest = max((text for _, text in page.evaluate("() => window.streamed")), key=len)
    assert narrative.startswith(longest) and len(longest) > GATE_AFTER_CHUNKS * 12
    page.wait_for_function("() => document.getElementById('notice').hidden", timeout=30_000)


def test_busy_answers_are_waited_out_politely(gateway: Gateway, page: Page) -> None:
    refused: list[tuple[str, float]] = []
    retried: list[tuple[str, float, Route]] = []
    held_streams: list[Route] = []

    def busy_once(route: Route) -> None:
        key = route.request.headers.get("idempotency-key", "")
        if route.request.method != "POST":
            route.continue_()
        elif not refused:
            refused.append((key, time.monotonic()))
            route.fulfill(
                status=503,
                headers={"Retry-After": "2", "Content-Type": "application/json"},
                body='{"error": {"code": "overloaded", "message": "Busy."}}',
            )
            # The story stream opens only now, while the page waits out Retry-After: its
            # opening must not wipe the notice (it did once, on a busy machine).
            for stream in held_streams:
                stream.continue_()
        else:
            retried.append((key, time.monotonic(), route))  # held until the notice is checked

    def stream_after_refusal(route: Route) -> None:
        if refused:
            route.continue_()
        else:
            held_streams.append(route)

    page.route("**/sessions/*/turns", busy_once)
    page.route("**/sessions/*/events?*", stream_after_refusal)
    page.add_init_script(COUNT_STREAM_OPENINGS)
    page.goto(gateway.url)
    page.get_by_role("button", name="Begin a new adventure").click()
    page.get_by_role("button", name="3. Play Pip, a halfling rogue").click()
    # Both open listeners run in one dispatch, so the page has handled the opening by now.
    page.wait_for_function("() => window.streamOpenings >= 1", timeout=60_000)
    notice = page.locator("#notice")
    assert "busy" in (notice.text_content() or ""), notice.text_content()
    deadline = time.monotonic() + 60
    while not retried and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # lets Playwright deliver the route callback
    assert retried, "the page never sent the turn again"
    (first_key, refused_at), (again_key, retried_at, held) = refused[0], retried[0]
    assert first_key and again_key == first_key  # one turn, however often sent
    assert retried_at - refused_at >= 1.5  # it waited out Retry-After (2 s)
    assert "busy" in (notice.text_content() or "")
    held.continue_()
    wait_told(page, 1)
    page.wait_for_function("() => document.getElementById('notice').hidden", timeout=30_000)


def test_a_session_gone_elsewhere_sends_the_page_back_to_the_start(
    gateway: Gateway, page: Page
) -> None:
    page.goto(gateway.url)
    page.get_by_role("button", name="Begin a new adventure").click()
    page.get_by_role("button", name="1. Play Brannoc, a dwarf fighter").click()
    wait_told(page, 1)
    stored = adventure(page)
    deleted = httpx.delete(
        f"{gateway.url}/sessions/{stored['sessionId']}",
        headers={"Authorization": f"Bearer {stored['token']}"},
        timeout=10,
    )
    assert deleted.status_code == 204
    # The stream ends, its reconnection is refused with 404, and the page says so.
    page.get_by_role("button", name="Begin a new adventure").wait_for(timeout=60_000)
    assert "no longer here" in (page.locator("#notice").text_content() or "")
    assert page.evaluate("() => localStorage.getItem('pocket-portals:adventure')") is None


def test_keyboard_only_on_a_phone_sized_screen_and_forget(
    browser: Browser, gateway: Gateway
) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(gateway.url)
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")  # New adventure
        page.keyboard.press("Enter")
        page.wait_for_selector("#choices button")
        # Keys that are no choice do nothing (a quote or a backslash once broke the selector
        # the shortcut built from the key).
        for key in ('"', "\\", "]", "0"):
            page.keyboard.press(key)
        assert not errors, errors
        page.keyboard.press("1")  # the first choice, by its number
        wait_told(page, 1)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        session_id = adventure(page)["sessionId"]
        token = adventure(page)["token"]

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Forget this adventure").click()
        page.get_by_role("button", name="Begin a new adventure").wait_for()
        assert page.evaluate("() => localStorage.getItem('pocket-portals:adventure')") is None
        gone = httpx.get(
            f"{gateway.url}/sessions/{session_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert gone.status_code == 404
    finally:
        context.close()
