"""Regenerate the console's screenshots shown in docs/console.md.

    python -m tests.browser.screenshots [--out docs/images]

Starts a ``strata serve`` on a temporary store with the tests' seeded history
(:mod:`tests.browser.harness`), opens each view in headless Chromium and writes
``console-<view>.png`` (1280 px wide; ``console-phone.png`` 390 px), each as tall as its page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser.harness import KEYS, chromium, seed, serve, write
from tests.server.conftest import stop_server

#: (file name, URL fragment, key scope, CSS selector that shows the view is rendered, window width)
VIEWS = [
    ("namespaces", "#/namespaces", "read", "#namespaces", 1280),
    ("namespace-at-tx", "#/ns/ledger?tx=1&key=acct%3A1", "read", "#record pre.value", 1280),
    ("record", "#/ns/web?key=logo", "read", "#record pre.hex", 1280),
    ("history", "#/history/ledger?key=acct%3A1", "read", "#timeline", 1280),
    ("diff", "#/diff/ledger?from=1&to=5", "read", "table.diff", 1280),
    ("phone", "#/ns/ledger?key=acct%3A1", "read", "#record pre.value", 390),
]


def _wait(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, 15).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def _open(driver: Any, base: str, fragment: str, scope: str | None, width: int) -> None:
    driver.set_window_size(width, 800)
    driver.get(base + fragment)
    if scope is None:
        driver.execute_script("sessionStorage.clear()")
    else:
        driver.execute_script("sessionStorage.setItem('strata.console.key', arguments[0])", KEYS[scope])
    driver.refresh()


def _shoot(driver: Any, path: Path, width: int) -> None:
    for _ in range(2):  # the outer window is taller than the page it shows; the second pass settles it
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        chrome = int(driver.execute_script("return window.outerHeight - window.innerHeight"))
        driver.set_window_size(width, min(max(height + chrome, 500), 2400))
    driver.save_screenshot(str(path))
    print(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/images", help="directory for console-*.png (default: docs/images)")
    out = Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = serve(Path(tmp))
        driver = None
        try:
            seed(server)
            driver = chromium()
            base = f"http://127.0.0.1:{server.port}/console"
            _open(driver, base, "#/namespaces", None, 1280)
            _wait(driver, "#api-key")
            _shoot(driver, out / "console-sign-in.png", 1280)
            for name, fragment, scope, ready, width in VIEWS:
                _open(driver, base, fragment, scope, width)
                _wait(driver, ready)
                _shoot(driver, out / f"console-{name}.png", width)
            _open(driver, base, "#/live/ledger", "read", 1280)
            _wait(driver, '#live-status[data-connected="true"]')
            for n in (1, 2):
                tx = write(server, "ledger", [{"key": f"acct:{3 + n}", "value": {"balance": 10 * n}}], {"by": "erin"})
            _wait(driver, f'#feed li.event[data-tx="{tx}"]')
            _shoot(driver, out / "console-live.png", 1280)
            _open(driver, base, "#/integrity", "admin", 1280)
            _wait(driver, "#verify").click()
            _wait(driver, "#verify-verdict")
            _shoot(driver, out / "console-integrity.png", 1280)
        finally:
            if driver is not None:
                driver.get("about:blank")
                driver.quit()
            stop_server(server.proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
