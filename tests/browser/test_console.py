"""The auditors' console in a real browser: headless Chromium (selenium) against a live ``strata serve``
with API keys and the seeded history of :mod:`tests.browser.harness`.

One server and one browser for the module. Tests touch only the namespaces they own besides the seeded
``ledger`` and ``web``, which no test writes, so any order gives the same answers. Each view's
screenshot goes to a temporary directory (its path is printed); ``python -m tests.browser.screenshots``
regenerates the ones in docs/images. Without Chromium these tests fail with the command to install it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from server.handlers.console import CONSOLE_DIR
from tests.browser.harness import KEYS, XSS_IMG, XSS_SCRIPT, BrowserMissing, call, chromium, seed, serve, write
from tests.server.conftest import LiveServer, stop_server

By: Any
Keys: Any
try:
    from selenium.common.exceptions import (
        NoAlertPresentException,
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the fixture below fails every test with the reason
    NoAlertPresentException = NoSuchElementException = StaleElementReferenceException = None
    TimeoutException = By = Keys = WebDriverWait = None

log = logging.getLogger(__name__)
WAIT = 15  # seconds any one expected state may take to appear (bounds a hang; nothing is timed)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[int, str]]]:
    srv = serve(tmp_path_factory.mktemp("console"))
    try:
        yield srv, seed(srv)
    finally:
        stop_server(srv.proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        driver = chromium()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("console-screenshots")
    print(f"console screenshots in {where}")
    return where


class Console:
    """The browser on the console of the module's server."""

    def __init__(self, driver: Any, srv: LiveServer, times: dict[int, str], shots: Path) -> None:
        self.driver, self.srv, self.times, self.shots = driver, srv, times, shots
        self.base = f"http://127.0.0.1:{srv.port}/console"

    def open(self, fragment: str, scope: str | None = "read", width: int = 1280) -> None:
        """Load ``/console#fragment`` afresh in this tab with ``scope``'s key (None: no key kept)."""
        if tuple(self.driver.get_window_size().values()) != (width, 900):
            self.driver.set_window_size(width, 900)
        key = None if scope is None else KEYS[scope]
        url = self.base + fragment
        on_console = self.driver.current_url.startswith(self.base + "#")
        kept = self.driver.execute_script("return sessionStorage.getItem('strata.console.key')") if on_console else 0
        if on_console and kept == key and self.driver.current_url != url:
            self.driver.get(url)  # the fragment alone changes: the page renders the view for the same key
            return
        self.driver.get(url)
        if scope is None:
            self.driver.execute_script("sessionStorage.clear()")
        else:
            self.driver.execute_script("sessionStorage.setItem('strata.console.key', arguments[0])", key)
        self.driver.refresh()

    def until(self, condition: Any) -> Any:
        """``condition(driver)`` once it is truthy; after :data:`WAIT` seconds, a failure showing the page."""
        try:
            # A view that re-renders between finding an element and reading it leaves a stale
            # reference: the condition is asked again, as for an element not there yet.
            return WebDriverWait(self.driver, WAIT, ignored_exceptions=(
                NoSuchElementException, StaleElementReferenceException)).until(lambda d: condition(d))
        except TimeoutException:
            shown = self.driver.execute_script("return [location.hash, document.getElementById('error').textContent,"
                                               " document.querySelector('main').innerText.slice(0, 1500)]")
            raise AssertionError(f"the console never reached the expected state; it shows {shown!r}") from None

    def find(self, css: str) -> Any:
        return self.until(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def heading(self, text: str) -> None:
        self.until(lambda d: d.find_element(By.CSS_SELECTOR, "main h2").text == text)

    def latest(self) -> int:
        """The store's latest tx now (other tests of the module write namespaces of their own)."""
        return int(call(self.srv, "GET", "/v4/head")["tx"])

    def texts(self, css: str) -> list[str]:
        return [e.text for e in self.all(css)]

    def rows(self, table: str) -> list[list[str]]:
        return [[c.text for c in r.find_elements(By.CSS_SELECTOR, "th, td")] for r in self.all(f"{table} tbody tr")]

    def fill(self, css: str, text: str) -> None:
        field = self.until(lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None))
        field.clear()
        field.send_keys(text)

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"console-{name}.png"))

    def inert(self) -> None:
        """No script of a value ran: no alert, no marker it sets, no element it would have made."""
        with pytest.raises(NoAlertPresentException):
            _ = self.driver.switch_to.alert.text
        assert self.driver.execute_script("return window.__xss === undefined")
        assert self.driver.execute_script("return document.querySelectorAll('img, main script, iframe').length") == 0
        assert self.driver.execute_script("return document.scripts.length") == 1


@pytest.fixture
def console(server: tuple[LiveServer, dict[int, str]], browser: Any, shots: Path) -> Console:
    return Console(browser, server[0], server[1], shots)


def test_a_key_is_typed_once_kept_for_the_tab_and_never_put_in_a_url(console: Console) -> None:
    console.open("#/namespaces", scope=None)
    console.fill("#api-key", "")
    assert [console.find(css).is_displayed() for css in ("#nav", "#who")] == [False, False]
    assert console.all("#main *") == []
    console.shot("sign-in")
    console.fill("#api-key", "not-a-key-0123456789\n")
    console.until(lambda d: d.find_element(By.ID, "error").text == "That API key is not known to this server.")
    assert console.find("#login").is_displayed()
    console.fill("#api-key", KEYS["read"] + "\n")
    console.heading("Namespaces")
    rows = {r[0]: r[1:4] for r in console.rows("#namespaces")}
    assert (rows["ledger"], rows["web"]) == (["2", "79", "6"], ["3", "234", "3"])
    assert console.find("#who-text").text == "Key auditor · read"
    assert console.find("#nav").is_displayed() and console.find("#sign-out").is_displayed()
    assert not console.find("#error").is_displayed()
    assert console.driver.execute_script("return sessionStorage.getItem('strata.console.key')") == KEYS["read"]
    assert KEYS["read"] not in console.driver.current_url
    console.shot("namespaces")
    console.find("#sign-out").click()
    console.find("#api-key")
    assert console.driver.execute_script("return sessionStorage.getItem('strata.console.key')") is None


def test_a_namespace_moves_to_an_old_tx_and_to_a_time(console: Console) -> None:
    console.open("#/namespaces")
    latest = console.latest()
    console.until(lambda d: next((a for a in d.find_elements(By.CSS_SELECTOR, "#namespaces a.ns-link")
                                  if a.text == "ledger"), None)).click()
    console.heading(f"ledger at tx {latest}")
    assert console.rows("#keys") == [["acct:1", "6", '{"balance":75,"owner":"dave"}'], ["acct:2", "4", "cleared"]]
    console.find("a.key-link").click()
    console.until(lambda d: d.find_element(By.CSS_SELECTOR, "#record h3").text == f"Record acct:1 at tx {latest}")
    values = console.texts("#record pre.value")
    assert values == ['{\n  "balance": 75,\n  "owner": "dave"\n}', '{\n  "source": "import"\n}']
    console.fill("#at-tx", "1\n")
    console.heading("ledger at tx 1 past: latest is 6")
    console.until(lambda d: d.find_element(By.CSS_SELECTOR, "#record h3").text == "Record acct:1 at tx 1")
    assert console.texts("#record pre.value") == ['{\n  "balance": 100\n}']
    assert console.rows("#keys") == [["acct:1", "1", '{"balance":100}'], ["acct:2", "1", '{"balance":50}']]
    assert console.driver.current_url.endswith("#/ns/ledger?tx=1&key=acct%3A1")
    console.shot("namespace-at-tx")
    console.fill("#at-time", console.times[2] + "\n")  # the moment tx 2 committed
    console.heading("ledger at tx 2 past: latest is 6")
    assert console.find(".resolved").text.startswith(f"At {console.times[2]}: tx 2 (committed\n")
    assert [r[0] for r in console.rows("#keys")] == ["acct:1", "acct:2", "acct:3"]
    assert console.texts("#record pre.value") == ['{\n  "balance": 80\n}']


def test_the_prefix_filter_and_the_scan_cursor_page_through_one_snapshot(console: Console) -> None:
    long = {"text": "y" * 200}
    first = write(console.srv, "pages", [{"key": f"item:{i:03}", "value": i or long} for i in range(150)]
                  + [{"key": "other", "value": 0}])
    console.open(f"#/ns/pages?prefix=item%3A&tx={first}")
    console.heading(f"pages at tx {first}")
    assert console.find("#page-count").text == "100 keys on this page with prefix “item:”"
    cell = console.find("#keys tbody tr td.value-cell details.long")  # a long value: its start, then all of it
    assert cell.find_element(By.TAG_NAME, "summary").text == json.dumps(long, separators=(",", ":"))[:119] + "…"
    cell.find_element(By.TAG_NAME, "summary").click()
    assert cell.find_element(By.TAG_NAME, "pre").text == json.dumps(long, indent=2)
    write(console.srv, "pages", [{"key": "item:149", "value": "later"}])  # the next page still reads tx `first`
    console.find("#next-page").click()
    console.until(lambda d: d.find_element(By.ID, "page-count").text == "50 keys on this page with prefix “item:”")
    rows = console.rows("#keys")
    assert rows[0] == ["item:100", str(first), "100"] and rows[-1] == ["item:149", str(first), "149"]
    assert not console.all("#next-page")


def test_a_keys_history_shows_each_version_its_note_and_change(console: Console) -> None:
    console.open("#/ns/ledger?key=acct%3A1")
    console.find("#history-link").click()
    console.heading("History of acct:1")
    versions = console.all("#timeline li.version")
    assert [v.get_attribute("data-tx") for v in versions] == ["6", "2", "1"]
    assert [v.find_element(By.CSS_SELECTOR, ".note").text for v in versions] == [
        'Note: {"by":"dave"}', 'Note: {"by":"bob"}', 'Note: {"by":"alice","ticket":"OPS-42"}']
    assert [v.find_element(By.CSS_SELECTOR, ".change").text for v in versions] == [
        'balance: 80 → 75\nowner: (none) → "dave"', "balance: 100 → 80", "first version on record"]
    assert versions[0].find_element(By.CSS_SELECTOR, "time .utc").text == console.times[6].replace("T", " ")
    assert versions[0].find_element(By.CSS_SELECTOR, "time .local").text.startswith("local ")
    console.shot("history")
    console.open("#/history/ledger?key=acct%3A2")
    console.heading("History of acct:2")
    assert [v.text.split("\n")[:2] for v in console.all("#timeline li.version")] == [["tx 4", "clear"], ["tx 1", "put"]]


def test_a_long_history_is_paged(console: Console) -> None:
    txs = [write(console.srv, "busy", [{"key": "counter", "value": n}], {"by": f"job-{n}"}) for n in range(55)]
    console.open("#/history/busy?key=counter")
    console.heading("History of counter")
    first = [v.get_attribute("data-tx") for v in console.all("#timeline li.version")]
    assert first == [str(tx) for tx in reversed(txs[5:])]
    assert console.all("#timeline li.version")[-1].find_element(By.CSS_SELECTOR, ".change").text == "4 → 5"
    console.find("#older").click()
    console.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#timeline li.version")) == 5)
    assert [v.get_attribute("data-tx") for v in console.all("#timeline li.version")] == [
        str(tx) for tx in reversed(txs[:5])]
    assert console.driver.current_url.endswith(f"#/history/busy?key=counter&before={txs[5]}")
    assert not console.all("#older")


def test_a_diff_between_two_txs(console: Console) -> None:
    console.open("#/ns/ledger")
    console.find('nav.tabs a[href^="#/diff/"]').click()
    console.heading("Diff of ledger")
    console.fill("#diff-from", "1")
    console.fill("#diff-to", "5\n")
    console.until(lambda d: d.find_element(By.ID, "diff-summary").text
                  == "From tx 1 to tx 5: 2 key(s) differ (1 changed, 1 cleared)")
    assert console.rows("table.diff") == [["acct:1", "changed", '{"balance":100}', '{"balance":80}'],
                                          ["acct:2", "cleared", '{"balance":50}', "cleared"]]
    assert console.driver.current_url.endswith("#/diff/ledger?from=1&to=5")
    console.shot("diff")
    console.find('table.diff tr[data-key="acct:2"] a').click()  # a changed key leads to its history
    console.heading("History of acct:2")
    console.driver.back()
    console.until(lambda d: d.find_element(By.ID, "diff-summary").text.startswith("From tx 1 to tx 5: 2 key(s)"))
    console.open("#/diff/ledger?from=0&to=6")
    console.until(lambda d: d.find_element(By.ID, "diff-summary").text.startswith("From tx 0 to tx 6: 2 key(s)"))
    assert [r[:2] for r in console.rows("table.diff")] == [["acct:1", "added"], ["acct:2", "added"]]


def test_a_live_write_arrives_and_pause_resumes_from_the_last_event(console: Console) -> None:
    console.open("#/live/feed")
    console.heading("Live feed of feed")
    console.until(lambda d: d.find_element(By.ID, "live-status").get_attribute("data-connected") == "true")
    tx1 = write(console.srv, "feed", [{"key": "door", "value": "<b>open</b>"}], {"by": "erin"})
    event = console.find(f'#feed li.event[data-tx="{tx1}"]')
    assert event.text.split("\n")[0] == f"tx {tx1}"
    assert 'Note: {"by":"erin"}' in event.text and 'door put "<b>open</b>"' in event.text
    console.shot("live")
    console.find("#live-toggle").click()
    console.until(lambda d: d.find_element(By.ID, "live-status").text
                  == f"Paused after tx {tx1}; resuming picks up from there.")
    tx2 = write(console.srv, "feed", [{"key": "door", "value": "shut"}])
    assert [e.get_attribute("data-tx") for e in console.all("#feed li.event")] == [str(tx1)]
    assert console.find("#live-toggle").text == "Resume"
    console.find("#live-toggle").click()
    console.find(f'#feed li.event[data-tx="{tx2}"]')
    assert [e.get_attribute("data-tx") for e in console.all("#feed li.event")] == [str(tx2), str(tx1)]
    console.inert()


def test_values_that_look_like_html_stay_text(console: Console) -> None:
    latest = console.latest()
    console.open("#/ns/web?key=" + quote(XSS_IMG, safe=""))
    console.heading(f"web at tx {latest}")
    assert [r[0] for r in console.rows("#keys")] == [XSS_IMG, "logo", "xss:script"]
    big = json.dumps({"html": XSS_IMG, "n": 18446744073709551615}, separators=(",", ":"))
    assert console.rows("#keys")[0][2] == big  # integers past 2^53 exactly as stored
    assert console.find("#record h3").text == f"Record {XSS_IMG} at tx {latest}"
    console.inert()
    console.shot("record")
    console.all("a.key-link")[2].click()
    console.until(lambda d: d.find_element(By.CSS_SELECTOR, "#record h3").text == f"Record xss:script at tx {latest}")
    assert console.texts("#record pre.value")[0] == json.dumps(XSS_SCRIPT)
    console.all("a.key-link")[1].click()
    console.until(lambda d: d.find_element(By.CSS_SELECTOR, "#record h3").text == f"Record logo at tx {latest}")
    assert console.find("#record .binary p").text == "Binary value, 13 bytes"
    assert console.texts("#record pre.hex") == ["00000000  89 50 4e 47 0d 0a 1a 0a 00 01 3c 62 3e"]
    assert console.texts("#record pre.b64") == ["iVBORw0KGgoAATxiPg=="]
    console.open("#/diff/web?from=0")
    console.until(lambda d: d.find_element(By.ID, "diff-summary").text.startswith("From tx 0 to tx"))
    assert [r[:2] for r in console.rows("table.diff")] == [[XSS_IMG, "added"], ["logo", "added"],
                                                           ["xss:script", "added"]]
    console.open("#/history/web?key=" + quote(XSS_IMG, safe=""))
    console.heading(f"History of {XSS_IMG}")
    console.inert()


def _controls(console: Console) -> list[str]:
    return [e.get_attribute("id") for e in console.all(".write-control, .admin-control, #revert-preview, #verify")]


def test_each_key_sees_only_the_controls_its_scope_allows(console: Console) -> None:
    head = call(console.srv, "GET", "/v4/head")
    console.open("#/ns/ledger?tx=1")
    console.heading("ledger at tx 1 past: latest is 6")
    assert _controls(console) == []
    # The server refuses the hidden control anyway.
    status = console.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('v4/storage/ledger/revert', {method: 'POST', headers: {Authorization: 'Bearer ' +"
        " sessionStorage.getItem('strata.console.key'), 'Content-Type': 'application/json'},"
        " body: JSON.stringify({to_tx: 1})}).then((r) => done(r.status));")
    assert status == 403
    console.open("#/integrity")
    console.heading("Integrity")
    assert console.find("#head-tx").text == str(head["tx"]) and console.find("#head-hash").text == head["hash"]
    assert console.find("#head-root").text == head["root"]
    assert console.find("#head-key-id").text == head["signed"]["key_id"]
    assert int(console.find("#head-signed-size").text) >= head["signed"]["size"]
    assert len(console.find("#head-signature").text) == 128
    assert _controls(console) == []

    console.open("#/ns/ledger?tx=1", scope="write")
    console.heading("ledger at tx 1 past: latest is 6")
    assert _controls(console) == ["revert", "revert-preview"]
    console.find("#revert-preview").click()
    console.find("#revert-apply")
    assert [r[:2] for r in console.rows("#revert table.diff")] == [["acct:1", "changed"], ["acct:2", "changed"]]
    console.open("#/integrity", scope="write")
    console.heading("Integrity")
    assert _controls(console) == []

    console.open("#/integrity", scope="admin")
    console.heading("Integrity")
    assert _controls(console) == ["verify-form", "verify"]
    console.find("#verify").click()
    verdict = console.find("#verify-verdict")
    latest = console.latest()
    assert verdict.text == f"Intact: {latest} tx(s) checked, head tx {latest}."
    assert verdict.get_attribute("class") == "ok"
    console.shot("integrity")
    # A receipt the chain does not pass through: verify names the tx, and the console shows it.
    console.fill('#verify-form input[name="rtx"]', "2")
    console.fill('#verify-form input[name="rhash"]', "0" * 64)
    console.find("#verify").click()
    console.until(lambda d: d.find_element(By.ID, "verify-verdict").get_attribute("class") == "bad")
    assert console.find("#verify-verdict").text.startswith(
        "NOT intact: the first bad tx is 2: the chain no longer matches the receipt")
    assert console.find("#verify-receipt").text == f"Against the receipt of tx 2 (hash {'0' * 64})."


def test_a_shared_url_reopens_the_same_view(console: Console) -> None:
    link = "#/ns/ledger?tx=1&key=acct%3A1"
    console.open(link, scope=None)
    console.fill("#api-key", KEYS["read"] + "\n")
    console.heading("ledger at tx 1 past: latest is 6")
    assert console.find("#record h3").text == "Record acct:1 at tx 1"
    assert console.texts("#record pre.value") == ['{\n  "balance": 100\n}']
    assert console.driver.current_url == console.base + link
    console.open("#/diff/ledger?from=1&to=5")
    console.until(lambda d: d.find_element(By.ID, "diff-summary").text.startswith("From tx 1 to tx 5: 2 key(s)"))
    assert console.find("#diff-from").get_attribute("value") == "1"


def test_a_trailing_slash_redirects_to_the_console_keeping_the_view(console: Console) -> None:
    console.open("#/namespaces")
    console.heading("Namespaces")
    console.driver.get(console.base + "/#/ns/ledger?tx=1&key=acct%3A1")
    console.heading("ledger at tx 1 past: latest is 6")
    assert console.driver.current_url == console.base + "#/ns/ledger?tx=1&key=acct%3A1"
    assert console.find("#record h3").text == "Record acct:1 at tx 1"


def test_every_module_is_loaded_once_under_its_version(console: Console) -> None:
    console.open("#/namespaces")
    console.driver.refresh()  # a fresh document: its resource entries are this load's
    console.heading("Namespaces")
    loaded = console.driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.js') "
        "|| n.includes('.js?'))")
    names = [re.fullmatch(re.escape(console.base) + r"/([\w-]+\.js)\?v=[0-9a-f]{32}", url) for url in loaded]
    assert all(names), loaded
    assert sorted(m.group(1) for m in names if m) == sorted(p.name for p in CONSOLE_DIR.glob("*.js"))


def test_it_works_by_keyboard_and_fits_a_phone(console: Console) -> None:
    latest = console.latest()
    console.open("#/ns/ledger", width=390)
    console.heading(f"ledger at tx {latest}")
    assert console.driver.execute_script("return document.activeElement.tagName") == "H2"
    for _ in range(40):  # tab to the first key and open it with Enter
        console.driver.switch_to.active_element.send_keys(Keys.TAB)
        if console.driver.switch_to.active_element.text == "acct:1":
            break
    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    console.until(lambda d: d.find_element(By.CSS_SELECTOR, "#record h3").text == f"Record acct:1 at tx {latest}")
    width = console.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    console.shot("phone")
    console.open("#/history/ledger?key=acct%3A1", width=390)
    console.heading("History of acct:1")
    width = console.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width


@pytest.mark.long
def test_first_render_of_a_namespace_of_100000_keys(console: Console) -> None:
    """The figure the console promises (a first render of a 100,000-key namespace within 1 s here):
    logged, not asserted, since a timing depends on the machine."""
    for start in range(0, 100_000, 10_000):
        write(console.srv, "big", [{"key": f"k:{i:06}", "value": {"n": i, "pad": "x" * 40}}
                                   for i in range(start, start + 10_000)])
    figures = []
    for _ in range(3):
        t0 = time.perf_counter()
        console.open("#/ns/big")
        console.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#keys tbody tr")) == 100)
        wall = time.perf_counter() - t0
        mark = console.driver.execute_script(
            "return performance.getEntriesByName('console:rendered').map((m) => m.startTime)[0]")
        figures.append((mark, wall))
    message = ", ".join(f"{mark:.0f} ms from navigation (driver round trip {wall * 1000:.0f} ms)"
                        for mark, wall in figures)
    log.warning("first render of a 100,000-key namespace: %s", message)
    print(f"first render of a 100,000-key namespace: {message}")
    assert console.rows("#keys")[0][0] == "k:000000"
