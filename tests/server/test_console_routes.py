"""The console's static files (``/console``, ``/console/{file}``) and ``/v4/whoami``, in process: exact
headers (CSP, caching, content types), 304s, 404s, the key's scope, and static checks of the files
(no inline code for the CSP to allow, no HTML sinks for values, shipped as package data)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from server import create_app
from server.handlers.console import CONSOLE_DIR, CSP
from tests.server.conftest import Client
from tests.server.test_auth import write_keys

ROOT = Path(__file__).resolve().parents[2]
SECURITY = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "x-frame-options": "DENY", "cross-origin-opener-policy": "same-origin"}


def test_the_page_is_html_with_a_strict_policy_and_revalidated(client: Client) -> None:
    r = client.get("/console")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert {k: r.headers[k] for k in SECURITY} == SECURITY
    assert re.fullmatch(r'"[0-9a-f]{32}"', r.headers["etag"])
    assert r.body.startswith(b"<!doctype html>")
    assert CSP == ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                   "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def test_a_matching_etag_answers_304_without_a_body(client: Client) -> None:
    etag = client.get("/console").headers["etag"]
    r = client.get("/console", headers={"If-None-Match": f'"nope", {etag}'})
    assert (r.status, r.body, r.headers["etag"]) == (304, b"", etag)
    assert r.headers["content-security-policy"] == CSP
    assert client.get("/console", headers={"If-None-Match": '"nope"'}).status == 200


def test_the_page_names_each_asset_by_its_current_version(client: Client) -> None:
    page = client.get("/console").body.decode()
    named = re.findall(r'(?:src|href)="console/([\w.]+)\?v=([0-9a-f]{32})"', page)
    assert {name for name, _ in named} == {"console.js", "console.css", "favicon.svg"}
    for name, version in named:
        r = client.get(f"/console/{name}", query={"v": version})
        assert r.status == 200 and r.headers["etag"] == f'"{version}"'
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.body == (CONSOLE_DIR / name).read_bytes()


@pytest.mark.parametrize(("name", "content_type"), [("console.js", "text/javascript; charset=utf-8"),
                                                    ("console.css", "text/css; charset=utf-8"),
                                                    ("favicon.svg", "image/svg+xml")])
def test_an_asset_without_its_version_is_revalidated(client: Client, name: str, content_type: str) -> None:
    for query in (None, {"v": "0" * 32}):
        r = client.get(f"/console/{name}", query=query)
        assert r.status == 200
        assert (r.headers["content-type"], r.headers["cache-control"]) == (content_type, "no-cache")
        assert {k: r.headers[k] for k in SECURITY} == SECURITY


@pytest.mark.parametrize("name", ["nope.js", "..", "%2e%2e", "console.js.bak", "keys.json"])
def test_a_file_the_console_does_not_have_is_404(client: Client, name: str) -> None:
    r = client.get(f"/console/{name}")
    assert r.status == 404 and r.code == "NOT_FOUND"
    assert r.json()["errors"] == [{"location": "path.file", "message": "no such file", "value": name}]


def test_unknown_query_parameters_are_refused(client: Client) -> None:
    assert client.get("/console", query={"key": "x"}).code == "INVALID_PARAMETERS"
    assert client.get("/console/console.js", query={"w": "1"}).code == "INVALID_PARAMETERS"


def test_whoami_with_auth_off(client: Client) -> None:
    r = client.get("/v4/whoami")
    body = r.json()
    del body["duration"]
    assert body == {"auth": False, "name": None, "scope": "admin", "namespaces": None}


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    keys = write_keys(tmp_path / "keys.json", [
        {"name": "auditor", "key": "console-read-0123456789", "scope": "read"},
        {"name": "ingest", "key": "console-write-0123456789", "scope": "write", "namespaces": ["b", "a"]},
    ])
    app = create_app(tmp_path / "data", keys_file=keys, sync=False)
    yield Client(app)
    app.close()


def test_whoami_names_the_callers_key(secured: Client) -> None:
    def who(token: str) -> dict[str, Any]:
        body = secured.get("/v4/whoami", token=token).json()
        del body["duration"]
        return body
    assert who("console-read-0123456789") == {"auth": True, "name": "auditor", "scope": "read", "namespaces": None}
    assert who("console-write-0123456789") == {"auth": True, "name": "ingest", "scope": "write",
                                               "namespaces": ["a", "b"]}
    assert secured.get("/v4/whoami").code == "UNAUTHORIZED"
    assert secured.get("/v4/whoami", token="not-a-key-0123456789").code == "UNAUTHORIZED"
    assert secured.get("/console").status == 200  # the files need no key
    assert secured.get("/console/console.js").status == 200


def test_the_files_have_no_inline_code_for_the_policy_to_allow() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="console/console.js?v={{v:console.js}}" defer>']
    assert not re.search(r"<style\b|\sstyle=|\son\w+=|javascript:", page, re.I)


def test_the_script_never_parses_data_as_html() -> None:
    script = (CONSOLE_DIR / "console.js").read_text()
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"setTimeout\(\s*[\"'`]|\.style\.|createContextualFragment|srcdoc", script)
    assert sinks == []


def test_a_non_editable_install_ships_every_console_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["server"]
    files = [f"console/{p.name}" for p in CONSOLE_DIR.iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, p) for p in patterns) for f in files)
