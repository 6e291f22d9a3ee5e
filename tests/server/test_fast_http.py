"""``server.fast_http``: the strict parser (what it refuses is what gunicorn then judges), the environ
(the same as gunicorn's ``wsgi.create``, key by key) and the answer (the same bytes as gunicorn's
``Response``, but for the ``Date`` value)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from gunicorn.http.wsgi import Response, WSGIErrorsWrapper, create
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import fast_http

CLIENT = ("127.0.0.1", 40123)
SERVER = ("127.0.0.1", 8080)
GET = b"GET /v4/storage/a/key?key=x HTTP/1.1\r\nHost: x\r\n\r\n"


def _cfg() -> Config:
    cfg = Config()
    cfg.set("workers", 2)
    return cfg


@pytest.mark.parametrize("data", [
    GET,
    b"POST /v4/storage/a/read HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /w HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET /a%20b?q=%C3%A9&x=1?y HTTP/1.1\r\nX-A:  spaced value\t \r\nX-A: two\r\n\r\n",
    b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /a HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n",
    b"GET /a HTTP/1.1\r\nX-Latin: caf\xe9\r\nX-Empty:\r\n\r\n",
])
def test_accepted(data: bytes) -> None:
    req = fast_http.parse(data + b"GET /next HTTP/1.1\r\n\r\n")
    assert req is not None
    assert req.size == len(data)


@pytest.mark.parametrize("data", [
    pytest.param(b"GET /a HTTP/1.0\r\n\r\n", id="http/1.0"),
    pytest.param(b"GET /a HTTP/2.0\r\n\r\n", id="http/2.0"),
    pytest.param(b"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", id="absolute-form"),
    pytest.param(b"CONNECT x:443 HTTP/1.1\r\n\r\n", id="authority-form"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\n\r\n", id="asterisk-form"),
    pytest.param(b"GET //a HTTP/1.1\r\n\r\n", id="double-slash"),
    pytest.param(b"GET /a#f HTTP/1.1\r\n\r\n", id="fragment"),
    pytest.param(b"get /a HTTP/1.1\r\n\r\n", id="lowercase-method"),
    pytest.param(b"GET  /a HTTP/1.1\r\n\r\n", id="two-spaces"),
    pytest.param(b"GET /a HTTP/1.1 \r\n\r\n", id="trailing-space"),
    pytest.param(b"\r\nGET /a HTTP/1.1\r\n\r\n", id="leading-empty-line"),
    pytest.param(b"GET /a\xff HTTP/1.1\r\n\r\n", id="non-ascii-target"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", id="two-content-lengths"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", id="content-length-list"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", id="signed-content-length"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n", id="huge-content-length"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 id="cl-and-te"),
    pytest.param(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="chunked"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", id="obs-fold"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: b\nX-B: c\r\n\r\n", id="bare-lf-in-head"),
    pytest.param(b"GET /a HTTP/1.1\nHost: x\r\n\r\n", id="bare-lf-after-request-line"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: b\rX-B: c\r\n\r\n", id="bare-cr"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost : x\r\n\r\n", id="space-before-colon"),
    pytest.param(b"GET /a HTTP/1.1\r\n Host: x\r\n\r\n", id="leading-space"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: b\x00c\r\n\r\n", id="nul"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: b\x01c\r\n\r\n", id="control-char"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: b\x7fc\r\n\r\n", id="del"),
    pytest.param(b"GET /a HTTP/1.1\r\nX_A: b\r\n\r\n", id="underscore-name"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A\x00: b\r\n\r\n", id="nul-in-name"),
    pytest.param(b"GET /a HTTP/1.1\r\n: b\r\n\r\n", id="empty-name"),
    pytest.param(b"GET /a HTTP/1.1\r\nNoColon\r\n\r\n", id="no-colon"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", id="two-hosts"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", id="two-content-types"),
    pytest.param(b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", id="expect"),
    pytest.param(b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", id="upgrade"),
    pytest.param(b"GET /a HTTP/1.1\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", id="http2-settings"),
    pytest.param(b"GET /a HTTP/1.1\r\nConnection: close, upgrade\r\n\r\n", id="connection-list"),
    pytest.param(b"GET /a HTTP/1.1\r\nConnection: close\r\nConnection: close\r\n\r\n", id="two-connections"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-Forwarded-Proto: https\r\n\r\n", id="scheme-header"),
    pytest.param(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", id="body-not-all-buffered"),
    pytest.param(b"GET /a HTTP/1.1\r\nHost: x\r\n", id="head-not-all-buffered"),
    pytest.param(b"GET /a HTTP/1.1\r\n" + b"X-A: b\r\n" * (fast_http.MAX_FIELDS + 1) + b"\r\n", id="too-many-fields"),
    pytest.param(b"GET /" + b"a" * 4094 + b" HTTP/1.1\r\n\r\n", id="request-line-over-limit"),
    pytest.param(b"GET /a HTTP/1.1\r\nX-A: " + b"b" * 8190 + b"\r\n\r\n", id="field-over-limit"),
])
def test_refused(data: bytes) -> None:
    assert fast_http.parse(data, scheme_headers=frozenset(Config().secure_scheme_headers)) is None


def _gunicorn(data: bytes, cfg: Config) -> tuple[Any, dict[str, Any]]:
    req = next(iter(RequestParser(cfg, [data], CLIENT)))
    resp, env = create(req, "sock", CLIENT, SERVER, cfg)
    env["wsgi.multithread"] = True  # as gthread sets it
    return resp, env


def _fast(data: bytes, cfg: Config) -> dict[str, Any]:
    req = fast_http.parse(data)
    assert req is not None
    return fast_http.environ(req, "sock", CLIENT, SERVER, fast_http.base_environ(WSGIErrorsWrapper(cfg), True))


@pytest.mark.parametrize("data", [
    GET,
    b"POST /v4/storage/a/write HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: application/json\r\n"
    b"Content-Length: 13\r\nAuthorization: Bearer k\r\nIdempotency-Key: i-1\r\n\r\n[{\"key\":\"a\"}]",
    b"GET /a%2Fb/%C3%A9%20%ff/?q=%41&q=b?c HTTP/1.1\r\nX-Dup: 1\r\nx-dup: 2\r\nX-Dup:3 \r\n"
    b"If-None-Match: \"v1\"\r\nX-Latin: caf\xe9\r\nX-Empty:\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD / HTTP/1.1\r\n\r\n",
])
def test_the_environ_is_gunicorns(data: bytes) -> None:
    cfg = _cfg()
    _, theirs = _gunicorn(data, cfg)
    ours = _fast(data, cfg)
    ours["wsgi.early_hints"] = theirs["wsgi.early_hints"]
    assert sorted(ours) == sorted(theirs)
    for key in ("wsgi.input", "wsgi.errors", "wsgi.early_hints"):
        assert type(ours.pop(key)) is type(theirs.pop(key)) or key == "wsgi.input"
    assert ours == theirs
    body = data.split(b"\r\n\r\n", 1)[1]
    assert _fast(data, cfg)["wsgi.input"].read() == body == _gunicorn(data, cfg)[1]["wsgi.input"].read()


class _Wire:
    """gunicorn's view of a socket: what was sent, in order."""

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def sendall(self, data: bytes) -> None:
        self.out.write(data)


def _answers(data: bytes, status: str, headers: list[tuple[str, str]], body: list[bytes]) -> tuple[bytes, bytes]:
    """The bytes gunicorn's Response and :class:`fast_http.FastResponse` write for one answer."""
    cfg = _cfg()
    req = next(iter(RequestParser(cfg, [data], CLIENT)))
    wire = _Wire()
    theirs = Response(req, wire, cfg)
    theirs.start_response(status, list(headers))
    for item in body:
        theirs.write(item)
    theirs.close()
    sent: list[bytes] = []
    ours = fast_http.FastResponse(fast_http.parse(data), sent.extend, False)  # type: ignore[arg-type]
    ours.answer(lambda env, start: (start(status, list(headers)), body)[1], {})
    return _undated(wire.out.getvalue()), _undated(b"".join(sent))


def _undated(answer: bytes) -> bytes:
    head, _, rest = answer.partition(b"Date: ")
    return head + b"Date: -" + rest[rest.index(b"\r\n"):]


@pytest.mark.parametrize("data,status,headers,body", [
    (GET, "200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")], [b'{"tx": 12}\n']),
    (GET, "200 OK", [("Content-Type", "text/event-stream")], [b"data: 1\n\n", b"", b"data: 2\n\n"]),
    (GET, "200 OK", [("Content-Type", "text/event-stream")], []),
    (GET, "200 OK", [("Content-Length", "3")], [b"abcdef", b"gh"]),
    (b"HEAD / HTTP/1.1\r\n\r\n", "200 OK", [("Content-Length", "11")], [b'{"tx": 12}\n']),
    (GET, "204 No Content", [("Content-Length", "0"), ("ETag", '"1"')], []),
    (GET, "304 Not Modified", [("ETag", '"1"')], [b"ignored"]),
    (b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", "404 Not Found", [("Content-Length", "2")], [b"{}"]),
    (GET, "200 OK", [("Content-Length", "2"), ("Connection", "x"), ("Server", "y"), ("X-A", " v ")], [b"{}"]),
])
def test_the_answer_is_gunicorns(data: bytes, status: str, headers: list[tuple[str, str]], body: list[bytes]) -> None:
    theirs, ours = _answers(data, status, headers, body)
    assert ours == theirs


def test_connection_close_when_the_worker_closes() -> None:
    sent: list[bytes] = []
    resp = fast_http.FastResponse(fast_http.parse(GET), sent.extend, True)  # type: ignore[arg-type]
    assert resp.answer(lambda env, start: (start("200 OK", [("Content-Length", "0")]), [])[1], {}) is False
    assert b"\r\nConnection: close\r\n" in sent[0]


def test_an_app_error_before_the_head_is_a_500_problem_and_closes() -> None:
    sent: list[bytes] = []
    resp = fast_http.FastResponse(fast_http.parse(GET), sent.extend, False)  # type: ignore[arg-type]

    def app(env: dict[str, Any], start: Any) -> list[bytes]:
        raise RuntimeError("boom")

    assert resp.answer(app, {"REQUEST_METHOD": "GET", "PATH_INFO": "/a"}) is False
    head, body = b"".join(sent).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"\r\nConnection: close\r\n" in head and b"\r\nContent-Type: application/problem+json\r\n" in head
    assert body == (b'{"type":"urn:strata:problem:INTERNAL_ERROR","title":"Internal Server Error","status":500,'
                    b'"detail":"the server hit an unexpected error; it has been logged","instance":"/a",'
                    b'"errors":[],"code":"INTERNAL_ERROR"}')


def test_an_app_error_after_the_head_propagates() -> None:
    sent: list[bytes] = []
    resp = fast_http.FastResponse(fast_http.parse(GET), sent.extend, False)  # type: ignore[arg-type]

    def events() -> Any:
        yield b"data: 1\n\n"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        resp.answer(lambda env, start: (start("200 OK", []), events())[1], {})
    assert b"".join(sent).endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")


def test_the_date_is_formatted_once_a_second() -> None:
    first = fast_http.http_date()
    assert fast_http.http_date() is first or fast_http.http_date() != first


_PIECES = [b"GET", b"POST", b"HEAD", b"get", b" ", b"  ", b"\t", b"/", b"//", b"/a", b"%2F", b"?", b"#", b"*",
           b"http://x", b"HTTP/1.1", b"HTTP/1.0", b"\r\n", b"\n", b"\r", b":", b" :", b"Host", b"Content-Length",
           b"Transfer-Encoding", b"chunked", b"Connection", b"close", b"Expect", b"X-A", b"X_A", b"0", b"1", b"12",
           b"\x00", b"\x7f", b"\xe9", b",", b"-", b"ab"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=30), st.lists(st.sampled_from(_PIECES), max_size=12))
def test_what_the_fast_parser_accepts_gunicorn_reads_the_same_way(head: list[bytes], fields: list[bytes]) -> None:
    """Random heads, and random fields after a well-formed request line: whenever the fast parser
    accepts one, gunicorn accepts it too, with the same environ, body and end."""
    cfg = _cfg()
    for data in (b"".join(head) + b"\r\n\r\n", b"POST /a HTTP/1.1\r\n" + b"".join(fields) + b"\r\n\r\n"):
        data += b"GET /next HTTP/1.1\r\n\r\n"
        req = fast_http.parse(data, scheme_headers=frozenset(cfg.secure_scheme_headers))
        if req is None:
            continue
        parser = RequestParser(cfg, [data], CLIENT)
        theirs = next(iter(parser))
        _, env = create(theirs, "sock", CLIENT, SERVER, cfg)
        env["wsgi.multithread"] = True
        ours = fast_http.environ(req, "sock", CLIENT, SERVER, fast_http.base_environ(env["wsgi.errors"], True))
        ours["wsgi.early_hints"] = env["wsgi.early_hints"]
        assert ours.pop("wsgi.input").read() == env.pop("wsgi.input").read()
        assert ours == env
        assert parser.unreader.take_buffered() == data[req.size:]


def test_checked_headers_are_remembered_and_the_answer_stays_gunicorns() -> None:
    """Header lines (and status lines) checked once are reused: the second answer with the same headers
    is gunicorn's too, a hop-by-hop header is still dropped, and a Content-Length still frames."""
    headers = [("Content-Type", "application/json"), ("Connection", "x"), ("X-B", " w "), ("Content-Length", "2")]
    first = _answers(GET, "200 OK", headers, [b"{}"])
    assert ("X-B", " w ") in fast_http._LINES and ("Connection", "x") in fast_http._LINES
    assert _answers(GET, "200 OK", headers, [b"{}"]) == first and first[0] == first[1]
    again = _answers(GET, "200 OK", [*headers[:3], ("Content-Length", "1")], [b"{}"])
    assert again[0] == again[1] and again[1].endswith(b"\r\nContent-Length: 1\r\n\r\n{")


@pytest.mark.parametrize("status,headers,error", [
    ("200 OK", [("Content-Type", "application/json\r\nX-Evil: 1")], "invalid value of response header"),
    ("200 OK", [("Content Type", "application/json")], "invalid response header name"),
    ("200 OK", [("Content-Type", b"application/json")], "invalid value of response header"),
    ("200 OK", [["Content-Type", ["application/json"]]], "invalid value of response header"),
    ("200 OK", [("Content-Length", "x2")], "invalid literal"),
    ("20 OK", [("Content-Type", "application/json")], "Invalid status"),
    (b"200 OK", [("Content-Type", "application/json")], "Invalid status"),
])
def test_bad_headers_are_refused_even_beside_remembered_ones(status: Any, headers: Any, error: str) -> None:
    good = fast_http.FastResponse(fast_http.parse(GET), [].extend, False)  # type: ignore[arg-type]
    good.start_response("200 OK", [("Content-Type", "application/json")])
    resp = fast_http.FastResponse(fast_http.parse(GET), [].extend, False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=error):
        resp.start_response(status, [("Content-Type", "application/json"), *headers])
