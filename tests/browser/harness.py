"""What the console's browser tests and its screenshot command share: headless Chromium, a live
``strata serve`` with API keys, and a seeded history.

:func:`chromium` starts the system's Chromium through the system's chromedriver (Debian ``chromium``
and ``chromium-driver``, which ``.ci/run`` installs); when either is missing it raises
:class:`BrowserMissing` with the command that installs them (the tests then fail, they do not skip).
:func:`seed` writes the history every test reads (:data:`HISTORY` says what each tx holds).
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import orjson

from server import cli
from tests.server.conftest import LiveServer, start_server

KEYS = {"read": "console-read-0123456789", "write": "console-write-0123456789",
        "admin": "console-admin-0123456789"}
NAMES = {"read": "auditor", "write": "ops", "admin": "root"}
XSS_SCRIPT = "<script>window.__xss = 'script'; alert('xss')</script>"
XSS_IMG = "<img src=x onerror=\"window.__xss = 'img'; alert('img')\">"
LOGO = b"\x89PNG\r\n\x1a\n\x00\x01<b>"
# tx -> what it did, for the assertions (the seed writes exactly these, in this order).
HISTORY = {
    1: "ledger: acct:1 = 100, acct:2 = 50 (alice)",
    2: "ledger: acct:1 = 80, acct:3 = 20 (bob)",
    3: "web: the XSS values and a binary logo",
    4: "ledger: acct:2 cleared (carol)",
    5: "ledger: acct:3 deleted (carol)",
    6: "ledger: acct:1 = 75 with an owner and metadata (dave)",
}


class BrowserMissing(RuntimeError):
    """Chromium or chromedriver is not installed."""


def chromium(width: int = 1280, height: int = 900) -> Any:
    """A headless Chromium session of the given window size (a selenium ``WebDriver``)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise BrowserMissing(f"selenium is not installed ({exc}): pip install -e '.[test]'") from None
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise BrowserMissing("the console's browser tests need Chromium and its driver: "
                             "apt-get install -y chromium chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", f"--window-size={width},{height}",
                "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium's own manager would otherwise try to download one.
    return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def serve(tmp: Path) -> LiveServer:
    """A 2-worker ``strata serve`` with a read, a write and an admin key, signing its heads."""
    keys = [{"name": NAMES[scope], "key": key, "scope": scope} for scope, key in KEYS.items()]
    (tmp / "keys.json").write_bytes(orjson.dumps({"keys": keys}))
    assert cli.main(["keygen", "--out", str(tmp / "signing.key")]) == 0
    return start_server(tmp, "--keys", str(tmp / "keys.json"), "--signing-key", str(tmp / "signing.key"))


def call(server: LiveServer, method: str, path: str, body: Any = ..., note: dict[str, Any] | None = None,
         scope: str = "admin") -> Any:
    """One API call with ``scope``'s key; the parsed answer (an AssertionError unless 2xx)."""
    headers = {"Authorization": f"Bearer {KEYS[scope]}"}
    if note is not None:
        headers["X-Strata-Note"] = orjson.dumps(note).decode()
    status, _, raw = server.request(method, path, json=body, headers=headers)
    assert 200 <= status < 300, (status, raw[:300])
    return orjson.loads(raw) if raw else None


def write(server: LiveServer, ns: str, items: list[dict[str, Any]], note: dict[str, Any] | None = None) -> int:
    return int(call(server, "POST", f"/v4/storage/{ns}/write", items, note)["tx"])


def seed(server: LiveServer) -> dict[int, str]:
    """Write :data:`HISTORY`; return each tx's commit time (RFC 3339, from the tx log)."""
    txs = [
        write(server, "ledger", [{"key": "acct:1", "value": {"balance": 100}},
                                 {"key": "acct:2", "value": {"balance": 50}}], {"by": "alice", "ticket": "OPS-42"}),
        write(server, "ledger", [{"key": "acct:1", "value": {"balance": 80}},
                                 {"key": "acct:3", "value": {"balance": 20}}], {"by": "bob"}),
        write(server, "web", [{"key": "xss:script", "value": XSS_SCRIPT},
                              {"key": XSS_IMG, "value": {"html": XSS_IMG, "n": 18446744073709551615}},
                              {"key": "logo", "value": base64.b64encode(LOGO).decode(), "binary": True}]),
        write(server, "ledger", [{"key": "acct:2"}], {"by": "carol", "reason": "closed"}),
        int(call(server, "POST", "/v4/storage/ledger/delete", {"keys": ["acct:3"]}, {"by": "carol"})["tx"]),
        write(server, "ledger", [{"key": "acct:1", "value": {"balance": 75, "owner": "dave"},
                                  "metadata": {"source": "import"}}], {"by": "dave"}),
    ]
    assert txs == list(HISTORY), txs
    return {tx: call(server, "GET", f"/v4/tx/{tx}")["time"] for tx in txs}
