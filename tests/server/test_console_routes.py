"""The console's static files (``/console``, ``/console/{file}``) and ``/v4/whoami``, in process: exact
headers (CSP, caching, content types), 304s, 404s, the key's scope, and static checks of the files
(no inline code for the CSP to allow, no HTML sinks for values, shipped as package data)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from server import create_app
from server.handlers.console import CONSOLE_DIR, CSP, load
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
        # The file as shipped, its imports' placeholders filled with their versions.
        shipped = (CONSOLE_DIR / name).read_bytes()
        assert re.sub(rb"\?v=[0-9a-f]{32}", b"", r.body) == re.sub(rb"\?v=\{\{v:[\w.-]+\}\}", b"", shipped)


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


def test_a_trailing_slash_is_a_permanent_redirect_to_the_page(client: Client) -> None:
    r = client.get("/console/")
    assert (r.status, r.body) == (308, b"")
    assert r.headers["location"] == "../console"
    assert urljoin("http://h/console/", r.headers["location"]) == "http://h/console"
    assert urljoin("http://h/prefix/console/", r.headers["location"]) == "http://h/prefix/console"
    assert {k: r.headers[k] for k in SECURITY} == SECURITY
    assert "content-type" not in r.headers
    assert client.get("/console/", query={"key": "x"}).code == "INVALID_PARAMETERS"
    r = client.request("POST", "/console/")
    assert (r.status, r.code, r.headers["allow"]) == (405, "METHOD_NOT_ALLOWED", "GET")


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


MODULES = sorted(p.name for p in CONSOLE_DIR.glob("*.js"))
# An import, as every module writes it: the file beside it, at the version the server fills in.
IMPORT = re.compile(r'^import \{ [\w$, ]+ \} from "\./([\w-]+\.js)\?v=\{\{v:\1\}\}";$')


def test_the_files_have_no_inline_code_for_the_policy_to_allow() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script type="module" src="console/console.js?v={{v:console.js}}">']
    assert not re.search(r"<style\b|\sstyle=|\son\w+=|javascript:", page, re.I)


@pytest.mark.parametrize("name", MODULES)
def test_no_script_parses_data_as_html(name: str) -> None:
    script = (CONSOLE_DIR / name).read_text()
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                       r"setTimeout\(\s*[\"'`]|\.style\.|createContextualFragment|srcdoc|\bimport\(", script)
    assert sinks == []


def _imports(name: str) -> list[str]:
    lines = [line for line in (CONSOLE_DIR / name).read_text().splitlines() if line.startswith(("import", "export *"))]
    matches = [IMPORT.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches, strict=True) if not m]
    return [m.group(1) for m in matches if m]


def test_every_module_is_imported_by_its_versioned_name_from_the_entry_module() -> None:
    # One URL per module (a module under two URLs would run twice, with two copies of its state),
    # and no file shipped that the page never loads.
    reached, todo = set(), ["console.js"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(_imports(name))
    assert sorted(reached) == MODULES
    assert len(MODULES) >= 10 and all(len((CONSOLE_DIR / m).read_text().splitlines()) <= 300 for m in MODULES)


def test_a_module_is_served_with_its_imports_current_versions_and_cached_for_a_year(client: Client) -> None:
    page = client.get("/console").body.decode()
    versions = dict(re.findall(r'src="console/([\w.]+)\?v=([0-9a-f]{32})"', page))
    todo = ["console.js"]
    while todo:
        name = todo.pop()
        r = client.get(f"/console/{name}", query={"v": versions[name]})
        assert (r.status, r.headers["etag"]) == (200, f'"{versions[name]}"')
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert b"{{v:" not in r.body
        for imported, version in re.findall(r'from "\./([\w-]+\.js)\?v=([0-9a-f]{32})";', r.body.decode()):
            assert versions.setdefault(imported, version) == version
            if imported not in todo:
                todo.append(imported)
    assert sorted(versions) == MODULES


def test_a_change_to_a_module_changes_the_version_of_every_module_importing_it(tmp_path: Path) -> None:
    for path in CONSOLE_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    before = load(tmp_path)
    with (tmp_path / "json.js").open("a") as f:
        f.write("// a new release\n")
    after = load(tmp_path)
    changed = {name for name in before if before[name].etag != after[name].etag}
    # json.js is imported by api.js and values.js, which everything else builds on.
    assert {"json.js", "api.js", "values.js", "console.js", "index.html"} <= changed
    assert changed.isdisjoint({"dom.js", "console.css", "favicon.svg"})
    assert after["api.js"].body.count(after["json.js"].etag.strip('"').encode()) == 1


def test_a_cycle_or_an_unknown_name_among_the_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script type="module" src="console/a.js?v={{v:a.js}}"></script>')
    (tmp_path / "a.js").write_text('import { b } from "./b.js?v={{v:b.js}}";\n')
    (tmp_path / "b.js").write_text('import { a } from "./a.js?v={{v:a.js}}";\n')
    with pytest.raises(ValueError, match=r"^the console's files name each other in a cycle: a\.js -> b\.js -> a\.js$"):
        load(tmp_path)
    (tmp_path / "b.js").write_text('import { c } from "./c.js?v={{v:c.js}}";\n')
    with pytest.raises(ValueError, match=r"^b\.js names 'c\.js', which the console does not have$"):
        load(tmp_path)


def test_a_non_editable_install_ships_every_console_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["server"]
    files = [f"console/{p.name}" for p in CONSOLE_DIR.iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, p) for p in patterns) for f in files)
