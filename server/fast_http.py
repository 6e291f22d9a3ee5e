"""HTTP/1.1 for strictly well-formed small requests, without gunicorn's parser and response machinery.

gunicorn's per-request Python (its parser, ``wsgi.create``, its ``Response``) costs about as much
CPU as the app itself on a small request. :class:`server.worker.StrataWorker` answers the requests
this module accepts with it, and hands everything else to gunicorn exactly as before.

Contract:

- :func:`parse` takes a request the worker has fully buffered (head and ``Content-Length`` body)
  and returns a :class:`FastRequest`, or None for anything outside a strict subset of what gunicorn
  accepts with the same meaning. Accepted: a request line ``METHOD SP origin-form SP HTTP/1.1``
  (method ``[A-Z]{3,20}``, target of visible ASCII starting with ``/`` and not ``//``, no ``#``),
  at most :data:`MAX_FIELDS` (and gunicorn's ``limit_request_fields``) header lines, each
  ``token ":" OWS field-value OWS`` ending in CRLF, with a token without ``_`` and a value of
  visible ASCII, obs-text and inner SP/HTAB. Refused (None): HTTP/1.0 and every other version,
  absolute/authority/asterisk forms, bare LF or CR, NUL and other controls, obs-fold, space before
  a colon, two ``Content-Length``\\ s or one that is not 1-15 plain digits, ``Transfer-Encoding``,
  ``Expect``, ``Upgrade``, ``HTTP2-Settings``, a ``Connection`` other than one ``close`` or
  ``keep-alive``, a repeated ``Host`` or ``Content-Type``, the proxy's scheme headers
  (``secure_scheme_headers``), a line over gunicorn's limits, a body not wholly buffered. A
  request refused here is one gunicorn may still serve (or answer 400): the fast path never
  answers what gunicorn would refuse, and never reads a request differently.
- :func:`environ` builds the WSGI environ gunicorn's ``wsgi.create`` builds for such a request
  (same keys, same values; ``wsgi.input`` is a ``BytesIO`` of the body, ``wsgi.errors`` one
  shared stream object per worker).
- :class:`FastResponse` writes the answer as gunicorn's ``Response`` does: status line, ``Server``,
  ``Date`` (formatted once a second), ``Connection``, the app's headers (hop-by-hop ones dropped),
  ``Content-Length`` framing when the app gives one, chunked otherwise, no body for HEAD, 1xx,
  204 and 304. Its head goes out with the first body bytes in one send.
"""

from __future__ import annotations

import io
import logging
import re
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

from gunicorn import SERVER, SERVER_SOFTWARE
from gunicorn.http.wsgi import HEADER_VALUE_RE, STATUS_RE, FileWrapper, _make_early_hints_callback
from gunicorn.util import is_hoppish

from server.problems import INTERNAL_ERROR, HTTPProblem

log = logging.getLogger(__name__)

MAX_FIELDS = 64  # header lines a fast request may have (gunicorn's default limit is 100)

_REQUEST_LINE = re.compile(rb"([A-Z]{3,20}) (/(?!/)[\x21\x22\x24-\x7e]*) HTTP/1\.1")
_FIELD = re.compile(rb"([!#$%&'*+\-.^`|~0-9A-Za-z]+):[ \t]*"
                    rb"((?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?)[ \t]*")
_LENGTH = re.compile(rb"[0-9]{1,15}")
_REFUSED_FIELDS = frozenset({"TRANSFER-ENCODING", "EXPECT", "UPGRADE", "HTTP2-SETTINGS"})
_SINGLETONS = frozenset({"HOST", "CONTENT-TYPE", "CONTENT-LENGTH", "CONNECTION"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")


class FastRequest:
    """A request :func:`parse` accepted: ``method``, ``uri`` (the raw target), ``path``, ``query``
    (str, latin-1 as gunicorn decodes them), ``path_info`` (the path percent-decoded, as in
    ``PATH_INFO``), ``headers`` (upper-cased names, values, in order),
    ``body`` (bytes), ``size`` (bytes of the buffer the request took), ``close`` (the client asked
    for ``Connection: close``)."""

    __slots__ = ("body", "close", "headers", "method", "path", "path_info", "query", "size", "uri")
    version = (1, 1)  # what gunicorn's early-hints callback reads

    def __init__(self, method: str, uri: str, headers: list[tuple[str, str]], body: bytes, size: int,
                 close: bool) -> None:
        self.method, self.uri, self.headers, self.body, self.size, self.close = method, uri, headers, body, size, close
        path, _, self.query = uri.partition("?")
        self.path = path
        # The target is visible ASCII (see parse): without a "%" it decodes to itself.
        self.path_info = unquote_to_bytes(path).decode("latin-1") if "%" in path else path


def parse(data: bytes | bytearray, max_fields: int = MAX_FIELDS, max_line: int = 4094,
          max_field_size: int = 8190, scheme_headers: Any = ()) -> FastRequest | None:
    """The request at the start of ``data`` when it is strictly well formed and wholly buffered (see
    the module docstring), else None. ``max_line``, ``max_fields`` and ``max_field_size`` are
    gunicorn's limits (a request at or over them goes to gunicorn, which refuses it);
    ``scheme_headers`` the upper-cased header names a trusted proxy may set the scheme with."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(data[:end]).split(b"\r\n")
    if len(lines) - 1 > max_fields or len(lines[0]) > max_line:
        return None
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None:
        return None
    fields = _fields(lines, max_field_size, scheme_headers)
    if fields is None:
        return None
    headers, length, close = fields
    size = end + 4 + length
    if len(data) < size:
        return None
    return FastRequest(line.group(1).decode("ascii"), line.group(2).decode("ascii"), headers,
                       bytes(data[end + 4:size]), size, close)


def _fields(lines: list[bytes], max_field_size: int,
            scheme_headers: Any) -> tuple[list[tuple[str, str]], int, bool] | None:
    """The header lines ``lines[1:]`` as (upper-cased name, value) pairs, the body's length and whether
    the client asked to close; None when one is outside the strict grammar (see :func:`parse`)."""
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    length = 0
    close = False
    for raw in lines[1:]:
        field = _FIELD.fullmatch(raw)
        if field is None or len(raw) + 2 > max_field_size:
            return None
        name = field.group(1).decode("latin-1").upper()
        value = field.group(2).decode("latin-1")
        if name in _SINGLETONS:
            if name in seen:
                return None
            seen.add(name)
            if name == "CONTENT-LENGTH":
                if _LENGTH.fullmatch(field.group(2)) is None:
                    return None
                length = int(value)
            elif name == "CONNECTION":
                token = value.lower()
                if token not in ("close", "keep-alive"):
                    return None
                close = token == "close"
        elif name in _REFUSED_FIELDS or name in scheme_headers:
            return None
        headers.append((name, value))
    return headers, length, close


def environ(req: FastRequest, sock: Any, client: tuple[str, int], server: tuple[str, int],
            base: dict[str, Any]) -> dict[str, Any]:
    """The WSGI environ of ``req`` as gunicorn's ``wsgi.create`` (and gthread) build it; ``base`` is
    :func:`base_environ`'s dict, copied."""
    env = base.copy()
    env["wsgi.input"] = io.BytesIO(req.body)
    env["gunicorn.socket"] = sock
    env["REQUEST_METHOD"] = req.method
    env["QUERY_STRING"] = req.query
    env["RAW_URI"] = req.uri
    repeated: dict[str, list[str]] = {}
    for name, value in req.headers:
        if name == "CONTENT-TYPE":
            env["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            env["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        if key in env:
            repeated.setdefault(key, [env[key]]).append(value)
        else:
            env[key] = value
    for key, values in repeated.items():
        env[key] = ",".join(values)
    env["REMOTE_ADDR"] = client[0]
    env["REMOTE_PORT"] = str(client[1])
    env["SERVER_NAME"] = server[0]
    env["SERVER_PORT"] = str(server[1])
    env["PATH_INFO"] = req.path_info
    return env


def base_environ(errors: Any, multiprocess: bool) -> dict[str, Any]:
    """The keys every fast request's environ shares (gunicorn's ``base_environ`` plus gthread's
    ``wsgi.multithread``, ``wsgi.url_scheme`` and an empty ``SCRIPT_NAME``)."""
    return {
        "wsgi.errors": errors, "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False, "wsgi.file_wrapper": FileWrapper, "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": SERVER_SOFTWARE, "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "SCRIPT_NAME": "",
    }


_STATUS_CODES: dict[str, int] = {}  # status lines already checked, with their code
_LINES: dict[tuple[str, str], str] = {}  # response headers already checked, with their line ("": dropped)
#: ``Content-Length`` headers already checked, with their line and value (kept apart from :data:`_LINES`:
#: the answer needs the length, and a 204 or 1xx answer drops the header).
_LENGTHS: dict[tuple[str, str], tuple[str, str]] = {}
_MAX_LINES = 4096  # then headers not seen yet are checked each time (values vary: ETags, locations)


def _status_code(status: str) -> int:
    """The code of the WSGI ``status`` (``ValueError`` unless it is ``"NNN reason"``)."""
    try:
        code = _STATUS_CODES.get(status)
    except TypeError:
        code = None
    if code is None:
        if not isinstance(status, str) or not STATUS_RE.fullmatch(status):
            raise ValueError(f"Invalid status {status!r}")
        code = int(status[:3])
        if len(_STATUS_CODES) < 1024:
            _STATUS_CODES[status] = code
    return code


def _header_line(name: str, value: str) -> str | None:
    """The head line of the response header ``name: value`` once checked as gunicorn checks it
    (``ValueError`` otherwise); ``""`` for a hop-by-hop header (dropped), None for ``Content-Length``
    (framing: the caller reads it)."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid response header name {name!r}")
    if not isinstance(value, str) or not HEADER_VALUE_RE.fullmatch(value):
        raise ValueError(f"invalid value of response header {name!r}")
    lname = name.lower()
    if lname == "content-length":
        return None
    if is_hoppish(lname):
        return ""
    value = value.strip(" \t")
    return f"{name}: {value}\r\n"


def _new_line(header: tuple[str, str]) -> tuple[str, str | None]:
    """``(line, None)`` of a response header not in :data:`_LINES` (checked by :func:`_header_line`,
    then remembered there), ``(line, its value)`` of a ``Content-Length`` (remembered in :data:`_LENGTHS`)."""
    try:
        known = _LENGTHS.get(header)
    except TypeError:  # unhashable: refused below
        known = None
    if known is not None:
        return known
    name, value = header
    line = _header_line(name, value)
    if line is None:
        value = value.strip(" \t")
        known = (f"{name}: {value}\r\n", value)
        if len(_LENGTHS) < _MAX_LINES:
            _LENGTHS[header] = known
        return known
    if len(_LINES) < _MAX_LINES:
        _LINES[header] = line
    return line, None


_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header's value, formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, localtime=False, usegmt=True))
    return _date[1]


class FastResponse:
    """One answer to a :class:`FastRequest`, written to ``send`` (a callable taking a list of byte
    strings to send in order, in one call where it can). ``close`` forces ``Connection: close``.
    The WSGI ``start_response`` and the response's ``write``/``finish`` follow gunicorn's
    ``Response`` (status and header validation, hop-by-hop headers dropped, framing)."""

    __slots__ = ("_head", "chunked", "headers_sent", "length", "must_close", "no_body", "send", "sent", "status")

    def __init__(self, req: FastRequest, send: Any, close: bool) -> None:
        self.send = send
        self.must_close = close or req.close
        self.no_body = req.method == "HEAD"
        self.status: str | None = None
        self.length: int | None = None
        self.chunked = False
        self.headers_sent = False
        self.sent = 0
        self._head = b""

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info:
            try:
                if self.status and self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("Response headers already set!")
        code = _status_code(status)
        no_body = self.no_body or code in (204, 304) or 100 <= code < 200
        lines = []
        length = None
        for header in headers:
            try:
                line = _LINES.get(header)
            except TypeError:  # unhashable: not a (str, str) pair, refused by _new_line
                line = None
            if line is None:
                line, size = _new_line(header)
                if size is not None:  # Content-Length
                    if code == 204 or 100 <= code < 200:
                        continue  # RFC 9110 6.4.2
                    length = int(size)
            if line:  # "": a hop-by-hop header, dropped
                lines.append(line)
        self.status, self.length, self.no_body = status, length, no_body
        self.chunked = length is None and not no_body
        if not self.must_close and length is None and not self.chunked and not no_body:
            self.must_close = True  # unreachable for HTTP/1.1 (gunicorn's should_close), kept for safety
        connection = "close" if self.must_close else "keep-alive"
        chunked = "Transfer-Encoding: chunked\r\n" if self.chunked else ""
        self._head = (f"HTTP/1.1 {status}\r\nServer: {SERVER}\r\nDate: {http_date()}\r\nConnection: {connection}\r\n"
                      f"{chunked}{''.join(lines)}\r\n").encode("latin-1")
        return self.write

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"{data!r} is not a byte")
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if self.no_body:
            data = b""
        elif self.length is not None:
            data = data[: max(0, self.length - self.sent)]
        if not data and self.headers_sent:
            return
        self.sent += len(data)
        parts = [b"%X\r\n" % len(data), data, b"\r\n"] if self.chunked and data else [data] if data else []
        if not self.headers_sent:
            parts.insert(0, self._head)
            self.headers_sent = True
        self.send(parts)

    def finish(self) -> None:
        """End the answer: the head if not yet sent, the last chunk of a chunked body."""
        if not self.headers_sent:
            self.headers_sent = True
            self.send([self._head, b"0\r\n\r\n"] if self.chunked else [self._head])
        elif self.chunked:
            self.send([b"0\r\n\r\n"])

    def answer(self, app: Any, env: dict[str, Any]) -> bool:
        """Run the WSGI ``app`` on ``env`` and write its answer; whether the connection may be kept
        alive. An exception before the head is sent becomes a 500 problem (the connection then
        closes); after it, it propagates (the caller closes the connection)."""
        body: Any = ()
        try:
            body = app(env, self.start_response)
            for item in body:
                self.write(item)
            self.finish()
        except Exception:
            if self.headers_sent:
                raise
            log.exception("unexpected error in %s %s", env["REQUEST_METHOD"], env["PATH_INFO"][:200])
            self._fail(env["PATH_INFO"])
            return False
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return not self.must_close

    def _fail(self, instance: str) -> None:
        problem = HTTPProblem(500, INTERNAL_ERROR, "the server hit an unexpected error; it has been logged"
                              ).body(instance)
        self.headers_sent = True
        self.send([b"HTTP/1.1 500 Internal Server Error\r\nServer: %s\r\nDate: %s\r\nConnection: close\r\n"
                   b"Content-Type: application/problem+json\r\nContent-Length: %d\r\n\r\n"
                   % (SERVER.encode(), http_date().encode(), len(problem)), problem])


def early_hints(req: FastRequest, sock: Any, resp: FastResponse) -> Any:
    """gunicorn's ``wsgi.early_hints`` callback for this request."""
    return _make_early_hints_callback(req, sock, resp)
