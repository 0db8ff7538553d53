"""The dashboard in a real headless Chromium: it loads, updates live, and guards its actions."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chunksync.app import App
from chunksync.models import Attempt, ChunkStatus, ErrorCategory, Outcome
from chunksync.results import FinishResult
from tests.acceptance.web_server import TOKEN, serve
from tests.servers import missing_server

pytestmark = pytest.mark.timeout(90)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
WAIT_SECONDS = 10.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        missing_server(
            "Chromium is not installed: bash scripts/test-servers.sh "
            "(Debian packages chromium and chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chunksync-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1366,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def finish(app: App, outcome: Outcome, message: str | None = None) -> str:
    """Claim the next chunk and record one attempt with this outcome, as a worker would."""
    token, [chunk] = app.manager.claim("elsewhere", ["job"])
    status = ChunkStatus.COMPLETED if outcome is Outcome.COMPLETED else ChunkStatus.DEAD
    category = None if outcome is Outcome.COMPLETED else ErrorCategory.PROCESSING_ERROR
    result = FinishResult(
        status, outcome, category=category, message=message, dead_reason=message, items=1
    )
    attempt = Attempt(
        chunk_id=chunk.id,
        queue_id=chunk.queue_id,
        tenant=chunk.tenant,
        worker_id="elsewhere",
        attempt=chunk.attempts,
        started_at=0.0,
        finished_at=0.25,
        outcome=outcome,
        category=category,
        message=message,
        items_processed=1,
        rss_bytes=50_000_000,
    )
    assert app.manager.finish(chunk, token, result, attempt)
    return chunk.id


@pytest.fixture
def site(sqlite_app: App) -> Iterator[tuple[App, str]]:
    sqlite_app.handler("job")(lambda ctx: None)
    sqlite_app.create_queue("job://api.example.com", [{"n": n} for n in range(6)], name="pages")
    sqlite_app.manager.register_worker("elsewhere", "host", 1, 1)
    finish(sqlite_app, Outcome.COMPLETED)
    finish(sqlite_app, Outcome.DEAD, XSS)
    with serve(sqlite_app) as base:
        yield sqlite_app, base


def wait_for(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def replaced(exc: Exception) -> bool:
    """Whether a WebDriver error means the element went as a live fragment or a new page
    replaced it: not there yet, stale, or, when the node goes between Chrome's lookup and the
    read, its inspector's "Node with given id does not belong to the document" (a bare
    WebDriverException: it once failed a wait at its first look)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    if isinstance(exc, NoSuchElementException | StaleElementReferenceException):
        return True
    return "does not belong to the document" in str(exc)


def wait_text(browser: Any, css: str, expected: str) -> None:
    """Wait until an element reads `expected`: after a form's submit the old page's element may
    be found first and go stale as the new page replaces it."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    seen: list[str] = []

    def reads(driver: Any) -> bool:
        try:
            seen.append(driver.find_element("css selector", css).text)
        except WebDriverException as exc:
            if not replaced(exc):
                raise
            return False
        return seen[-1] == expected

    try:
        WebDriverWait(browser, WAIT_SECONDS).until(reads)
    except Exception as exc:
        raise AssertionError(f"{css} read {seen[-3:]!r}, not {expected!r}") from exc


def click(browser: Any, css: str) -> None:
    """Click an element of a live fragment, which may be replaced between finding and clicking."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(driver: Any) -> bool:
        try:
            driver.find_element("css selector", css).click()
            return True
        except WebDriverException as exc:
            if not replaced(exc):
                raise
            return False

    WebDriverWait(browser, WAIT_SECONDS).until(attempt)


def shoot(browser: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_overview_loads_at_laptop_and_narrow_width(browser: Any, site: tuple[App, str]) -> None:
    _, base = site
    browser.set_window_size(1366, 900)
    browser.get(base + "/")
    heading = wait_for(browser, "#health-h")
    assert "System" in heading.text
    assert wait_for(browser, "#queue-table").text.count("pages") == 1
    assert browser.find_element("css selector", "svg.chart") is not None
    shoot(browser, "overview-1366")
    browser.set_window_size(400, 900)
    browser.get(base + "/")
    wait_for(browser, "#health-h")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, "the page scrolls sideways in a narrow window"
    shoot(browser, "overview-400")
    browser.set_window_size(1366, 900)


def test_a_chunk_completed_elsewhere_appears_without_reload(
    browser: Any, site: tuple[App, str]
) -> None:
    app, base = site
    browser.get(base + "/chunks?status=completed")
    wait_for(browser, "#chunk-table")
    before = browser.execute_script(
        "return document.querySelectorAll('#chunk-table tbody tr').length"
    )
    browser.execute_script("window.__same_page = true")
    chunk_id = finish(app, Outcome.COMPLETED)  # another process, as far as the page knows
    # The fragment is replaced every few hundred ms: select by attributes, never hold a row.
    wait_for(browser, f'tr[data-chunk="{chunk_id}"][data-status="completed"]')
    assert browser.execute_script("return window.__same_page === true"), "the page reloaded"
    rows = browser.execute_script(
        "return document.querySelectorAll('#chunk-table tbody tr').length"
    )
    assert rows == before + 1


def test_actions_need_the_token_and_errors_show_as_text(
    browser: Any, site: tuple[App, str]
) -> None:
    app, base = site
    [dead] = app.manager.list_chunks(status=ChunkStatus.DEAD)
    browser.delete_all_cookies()
    browser.get(f"{base}/chunks/{dead.id}")
    wait_for(browser, "#last-error")
    text = browser.execute_script("return document.querySelector('#last-error').textContent")
    assert "<script>" in text and "<img" in text  # shown as text ...
    assert browser.execute_script("return window.__xss === undefined")  # ... never run
    assert not browser.find_elements("css selector", "button.act-retry")
    status = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const body = new URLSearchParams({kind: 'chunk', target: arguments[0], action: 'retry',
                                          csrf: 'forged', next: '/'});
        fetch('/actions', {method: 'POST', body}).then(r => done(r.status));""",
        dead.id,
    )
    assert status == 403
    assert app.manager.get_chunk(dead.id).status is ChunkStatus.DEAD
    assert TOKEN not in browser.page_source

    browser.get(base + "/login")
    wait_for(browser, "#token").send_keys("not-the-token")
    browser.find_element("css selector", "#sign-in-button").click()
    assert "wrong token" in wait_for(browser, "#login-error").text
    wait_for(browser, "#token").send_keys(TOKEN)
    browser.find_element("css selector", "#sign-in-button").click()
    wait_for(browser, "#health-h")
    browser.get(f"{base}/chunks/{dead.id}")
    click(browser, "button.act-retry")
    assert "is pending" in wait_for(browser, "#notice").text
    assert app.manager.get_chunk(dead.id).status is ChunkStatus.PENDING
    assert app.manager.list_audit(chunk_id=dead.id)[0].action == "retry_chunk"
    assert TOKEN not in browser.page_source
    shoot(browser, "chunk-after-retry")


def test_an_operator_closes_a_dependency_and_sees_it_stopped(
    browser: Any, site: tuple[App, str]
) -> None:
    app, base = site
    [dep] = app.deps.all()
    row = f'tr[data-dependency="{dep.name}"]'
    browser.delete_all_cookies()
    browser.get(base + "/")
    click(browser, 'nav a[href="/dependencies"]')
    assert dep.name in wait_for(browser, f'{row}[data-flow="ok"]').text
    assert not browser.find_elements("css selector", "button.act-close")  # not signed in

    browser.get(base + "/login")
    wait_for(browser, "#token").send_keys(TOKEN)
    browser.find_element("css selector", "#sign-in-button").click()
    wait_for(browser, "#health-h")
    browser.get(base + "/dependencies")
    click(browser, f"{row} button.act-close")
    assert "is closed" in wait_for(browser, "#notice").text
    badge = wait_for(browser, f'{row}[data-flow="stopped"] .badge.flow-stopped')
    assert badge.text == "stopped"
    assert app.deps.get(dep.name).state.flow.value == "stopped"
    assert TOKEN not in browser.page_source
    shoot(browser, "dependency-closed")


def sign_in(browser: Any, base: str) -> None:
    browser.delete_all_cookies()
    browser.get(base + "/login")
    wait_for(browser, "#token").send_keys(TOKEN)
    browser.find_element("css selector", "#sign-in-button").click()
    wait_for(browser, "#health-h")


def test_an_operator_searches_chunks_and_sees_the_payload(
    browser: Any, site: tuple[App, str]
) -> None:
    app, base = site
    [dead] = app.manager.list_chunks(status=ChunkStatus.DEAD)
    browser.delete_all_cookies()
    browser.get(base + "/chunks")
    box = wait_for(browser, "#chunk-search")
    box.send_keys("ONERROR")  # in the dead chunk's error, in any case
    browser.find_element("css selector", "#chunk-filters button[type=submit]").click()
    wait_text(browser, "#chunk-count", "1–1 of 1 chunk(s)")
    assert wait_for(browser, f'tr[data-chunk="{dead.id}"]')
    assert browser.execute_script("return window.__xss") is None
    browser.get(f"{base}/chunks/{dead.id}")
    assert '"n"' in wait_for(browser, "#chunk-payload").text
    shoot(browser, "chunk-search")


def test_an_operator_cancels_a_selection_after_confirming(
    browser: Any, site: tuple[App, str]
) -> None:
    from selenium.webdriver.support.ui import Select

    app, base = site
    pending = app.manager.list_chunks(status=ChunkStatus.PENDING)[:2]
    sign_in(browser, base)
    browser.get(base + "/chunks?status=pending")
    for chunk in pending:
        click(browser, f'tr[data-chunk="{chunk.id}"] input[type=checkbox]')
    Select(wait_for(browser, "#bulk-action")).select_by_value("cancel")
    browser.find_element("css selector", "#bulk-selected").click()
    wait_text(browser, "#bulk-count", "2")
    assert all(app.manager.get_chunk(c.id).status is ChunkStatus.PENDING for c in pending)
    shoot(browser, "bulk-confirm")
    browser.find_element("css selector", "#bulk-confirm").click()
    assert "cancel: 2 of 2 chunk(s) done" in wait_for(browser, "#notice").text
    for chunk in pending:
        assert app.manager.get_chunk(chunk.id).status is ChunkStatus.CANCELLED
        [entry] = app.manager.list_audit(chunk_id=chunk.id)
        assert (entry.action, entry.actor) == ("cancel_chunk", "dashboard")

    browser.get(base + "/chunks?status=dead")  # everything matching a filter
    Select(wait_for(browser, "#bulk-action")).select_by_value("retry")
    browser.find_element("css selector", "#bulk-matching").click()
    wait_text(browser, "#bulk-count", "1")
    browser.find_element("css selector", "#bulk-confirm").click()
    assert "retry: 1 of 1 chunk(s) done" in wait_for(browser, "#notice").text
    assert app.manager.list_chunks(status=ChunkStatus.DEAD) == []
    assert TOKEN not in browser.page_source
