"""The auditors' console: its static files at ``/console``, and ``/v4/whoami``, which tells it what its key may do.

The files are plain HTML, CSS and JavaScript shipped inside the package (``server/console/``, package
data), read once per process on first use and answered from memory. Contract:

- ``GET /console`` answers ``index.html``; ``GET /console/{file}`` answers one of the files of that
  directory by its exact name (anything else: 404 ``NOT_FOUND`` at ``path.file``). ``GET /console/``
  (a typed or pasted trailing slash) is a permanent redirect, 308 with ``Location: ../console`` (relative,
  so it stays right behind a proxy that mounts the server under a prefix; the browser keeps the URL's
  ``#`` fragment, hence the view, across it); like ``/console`` it takes no query parameter. None of
  them needs an API key: the files hold no data; every call the console makes to the API carries the
  user's key.
- Every answer carries a Content-Security-Policy that allows scripts, styles, images and fetches from
  this origin only (no inline script or style, no ``eval``), no framing, no plugins, no ``<base>``,
  plus ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
- Caching: every answer has a strong ``ETag`` (the content's SHA-256) and a matching ``If-None-Match``
  answers 304. Files name each other with ``?v=<etag>``: in any text file, ``{{v:NAME}}`` is replaced by
  the ETag digest of file NAME as served (``index.html`` names its script, style and icon so, and each
  JavaScript module names the modules it imports so). An asset asked for with the ``v`` of its current
  content is cacheable for a year (``immutable``), anything else is ``no-cache`` (the browser
  revalidates it on every use), so a new release is picked up at the next page load. Since a file's
  ETag is taken after its placeholders are filled, a change to one module changes the version of every
  module that imports it, up to ``index.html``; the placeholders must therefore not form a cycle
  (loading refuses one, and a placeholder naming no file, with a ``ValueError``).
- ``GET /v4/whoami`` (any valid key): ``{"auth", "name", "scope", "namespaces"}`` of the key the request
  came with, so the console shows only the controls that key may use; with auth off, ``auth`` is false
  and ``scope`` is ``admin`` (every route is open).
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.http import Headers, Request, Response, duration, json_response
from server.problems import NOT_FOUND, HTTPProblem

if TYPE_CHECKING:
    from server.app import App

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
INDEX = "index.html"

#: The policy of every console answer: nothing but this origin's own files, no inline code.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_SECURITY: Headers = [("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                      ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
                      ("Cross-Origin-Opener-Policy", "same-origin")]
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".txt": "text/plain; charset=utf-8"}
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_NO_QUERY: frozenset[str] = frozenset()
_VERSION_QUERY = frozenset({"v"})
_PLACEHOLDER = re.compile(r"\{\{v:([\w.-]+)\}\}")


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as served: its bytes, media type and ETag (quoted)."""

    body: bytes
    content_type: str
    etag: str


_lock = threading.Lock()
_assets: dict[str, Asset] | None = None


def assets(directory: Path = CONSOLE_DIR) -> dict[str, Asset]:
    """The console's files by name, read once (with the ``?v=`` of the files they name filled in)."""
    global _assets
    with _lock:
        if _assets is None:
            _assets = load(directory)
        return _assets


def load(directory: Path) -> dict[str, Asset]:
    """Read every file of ``directory`` with a known extension; in each text file, each ``{{v:NAME}}``
    becomes the ETag digest of file NAME as served (the cache-busting version), NAME's own
    placeholders filled first."""
    raw = {path.name: path.read_bytes() for path in sorted(directory.iterdir())
           if path.is_file() and path.suffix in _TYPES}
    found: dict[str, Asset] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> Asset:
        if name in found:
            return found[name]
        if name in chain:
            raise ValueError(f"the console's files name each other in a cycle: {' -> '.join((*chain, name))}")
        body = raw[name]
        suffix = Path(name).suffix
        if _TYPES[suffix].startswith("text/"):
            def version(m: re.Match[str]) -> str:
                named = m.group(1)
                if named not in raw:
                    raise ValueError(f"{name} names {named!r}, which the console does not have")
                return resolve(named, (*chain, name)).etag.strip('"')
            body = _PLACEHOLDER.sub(version, body.decode("utf-8")).encode("utf-8")
        found[name] = _asset(body, _TYPES[suffix])
        return found[name]

    for name in raw:
        resolve(name, ())
    return found


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def page(app: App, req: Request) -> Response:
    """``GET /console``: the console's page."""
    req.query(_NO_QUERY)
    return _answer(req, assets()[INDEX], _REVALIDATE)


def slash(app: App, req: Request) -> Response:
    """``GET /console/``: 308 to ``/console`` (see the module docstring)."""
    req.query(_NO_QUERY)
    return 308, [("Location", "../console"), *_SECURITY], []


def asset(app: App, req: Request) -> Response:
    """``GET /console/{file}``: one of the console's files, by exact name."""
    name = req.params["file"]
    query = req.query(_VERSION_QUERY)
    found = assets().get(name)
    if found is None:
        raise HTTPProblem(404, NOT_FOUND, f"the console has no file {name[:100]!r}",
                          [{"location": "path.file", "message": "no such file", "value": name[:100]}])
    cache = _IMMUTABLE if query.get("v") == found.etag.strip('"') else _REVALIDATE
    return _answer(req, found, cache)


def _answer(req: Request, found: Asset, cache: str) -> Response:
    headers: Headers = [("ETag", found.etag), ("Cache-Control", cache), *_SECURITY]
    match = req.environ.get("HTTP_IF_NONE_MATCH", "")
    if found.etag in (tag.strip().removeprefix("W/") for tag in match.split(",")):
        return 304, headers, []
    return 200, [("Content-Type", found.content_type), *headers], [found.body]


def whoami(app: App, req: Request) -> Response:
    """``GET /v4/whoami``: the calling key's name, scope and namespaces (see the module docstring)."""
    req.query(_NO_QUERY)
    key = req.principal
    if key is None:
        payload = {"auth": False, "name": None, "scope": "admin", "namespaces": None}
    else:
        names = None if key.namespaces is None else sorted(key.namespaces)
        payload = {"auth": True, "name": key.name, "scope": key.scope, "namespaces": names}
    return json_response(200, {**payload, "duration": duration(req.t0)})
