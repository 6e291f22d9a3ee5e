"""Runs the fenced examples of README.md and docs/*.md and compares what they print with what the docs show.

The conventions a doc follows (README.md, "Development", says the same for writers):

* A ```` ```sh ```` block is run by ``bash`` in the doc's shell directory, which holds the store ``data``
  of a ``strata serve`` started for the doc (``--workers 1``, on a free port: ``localhost:8080`` in a
  command is that port). ``strata`` runs this checkout's CLI (``python -m server``); ``python`` is the
  suite's interpreter. Each block gets its own shell; stdout and stderr are its output.
* A ```` ```python ```` block is executed in one interpreter per doc (so names carry over from block
  to block, in document order), in a directory of its own; what it prints is its output.
* ```` ```python file=tamper.py ```` (any language) is not run: it is written to that file in the
  shell directory, for a later ``sh`` block to use.
* The output of a block is the next block tagged ``output`` (```` ```json output ````, ```` ```text
  output ````): prose may come between them, no other block. A block without one must print nothing.
* ``<!-- not run: REASON -->`` on the line before a block skips it; every other block must be one of
  the above, so an example cannot escape the check by accident.
* ``<!-- fresh store -->`` on a line of its own: the examples after it start again from a new, empty
  store (a new server, a new Python interpreter).
* ``<!-- serve: ARGS -->`` on the line before a ``sh`` block: the doc's server is restarted, on the same
  store, as ``strata serve ... ARGS`` before the block runs (``--signing-key signing.key``, a key an
  earlier block made); it keeps those options until the next such marker or the segment's end.

Outputs are compared exactly, except for what differs from run to run:

* masked: ``duration``, the ``seconds`` a compaction or import took, the pid of an SSE comment;
* renamed consistently: times (RFC 3339, Python ``datetime`` reprs, ``time_us``) and SHA-256 hashes
  (also as a 16-digit prefix followed by ``...``), and hex strings of 32 and 128 digits (key ids and
  Ed25519 signatures). The first time a doc shows a value, it stands for
  the value the run printed there; wherever the doc shows it again, the run must print that same value,
  and a value the doc shows in a later *command* (a receipt's hash, a time) is replaced by the run's.
  A time in a command that no output showed is mapped to a run time in the same order relative to the
  times already seen (``tx?at=`` a moment between two commits). A change of format (``Z`` for
  ``+00:00``) is a difference;
* the shell directory is shown as ``/srv/strata`` (and so is the Python directory), the port as 8080.

When both the shown and the printed output are JSON documents, they are compared as JSON (member order
kept), so a doc may wrap a long answer over lines for readability.

``python -m tests.docs_examples [--update] [FILE ...]`` checks (or, with ``--update``, rewrites) the
outputs of the given docs (default: all). Rewriting keeps a shown output whose only differences are
masked, and otherwise writes what the code printed with the doc's own times, hashes and durations put
back where they correspond, so a regenerated doc changes only where the behaviour did.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHOWN_DIR = "/srv/strata"  # what a doc shows for the directory its examples run in
SHOWN_PORT = 8080
SHELL_LANGS = frozenset({"sh", "bash", "shell"})
PYTHON_LANGS = frozenset({"python", "py"})
BLOCK_TIMEOUT = 60  # a guard against a hung example, not a timing assertion

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*(.*?)\s*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(.*?)\s*-->\s*$")
_FRESH = re.compile(r"^\s*<!--\s*fresh store\s*-->\s*$")
_SERVE = re.compile(r"^\s*<!--\s*serve:\s*(.*?)\s*-->\s*$")


# --------------------------------------------------------------------------- parsing

@dataclass
class Block:
    """One fenced block: ``body`` is its text, lines ``open_line`` and ``close_line`` (0-based) its fences."""

    lang: str
    attrs: list[str]
    body: str
    open_line: int
    close_line: int
    indent: str
    fence: str
    not_run: str | None = None
    segment: int = 0
    serve_args: str | None = None

    @property
    def number(self) -> int:
        return self.open_line + 1

    @property
    def is_output(self) -> bool:
        return "output" in self.attrs

    @property
    def file_name(self) -> str | None:
        for attr in self.attrs:
            if attr.startswith("file="):
                return attr[5:]
        return None

    @property
    def runnable(self) -> bool:
        return (self.not_run is None and not self.is_output and self.file_name is None
                and (self.lang in SHELL_LANGS or self.lang in PYTHON_LANGS))


@dataclass
class Step:
    """A block that runs, and the output block that shows what it prints (None: it prints nothing)."""

    block: Block
    output: Block | None


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of a markdown text, with its ``not run`` marker and store segment."""
    lines = text.split("\n")
    blocks: list[Block] = []
    segment = 0
    i = 0
    while i < len(lines):
        if _FRESH.match(lines[i]):
            segment += 1
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) and not close.group(3):
                break
            j += 1
        words = info.split()
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1:j])
        prev = i - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        marker = _NOT_RUN.match(lines[prev]) if prev >= 0 else None
        serve = _SERVE.match(lines[prev]) if prev >= 0 else None
        blocks.append(Block(lang=words[0].lower() if words else "", attrs=words[1:], body=body, open_line=i,
                            close_line=j, indent=indent, fence=fence,
                            not_run=marker.group(1) if marker else None, segment=segment,
                            serve_args=serve.group(1) if serve else None))
        i = j + 1
    return blocks


def plan(blocks: list[Block]) -> tuple[list[Step], list[str]]:
    """The steps to run, and every block that breaks the conventions (neither run nor marked, ...)."""
    steps: list[Step] = []
    problems: list[str] = []
    last: Step | None = None
    for block in blocks:
        if block.is_output:
            if last is None or last.output is not None or last.block.segment != block.segment:
                problems.append(f"line {block.number}: an output block that follows no example that runs")
            else:
                last.output = block
            last = None
            continue
        if block.not_run is not None:
            if not block.not_run:
                problems.append(f"line {block.number}: 'not run' needs a reason")
            last = None
            continue
        if block.file_name is not None:
            last = None
            continue
        if not block.runnable:
            problems.append(f"line {block.number}: a ```{block.lang or '(no language)'} block is neither run "
                            "(sh, python, file=NAME) nor marked <!-- not run: REASON -->")
            last = None
            continue
        if block.serve_args is not None and block.lang not in SHELL_LANGS:
            problems.append(f"line {block.number}: a 'serve:' marker must come before a sh block")
        last = Step(block, None)
        steps.append(last)
    return steps, problems


# --------------------------------------------------------------------------- volatile values

# RFC 3339, and str() of an aware datetime (a space for the T)
_RFC3339 = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_PYTIME = re.compile(r"datetime\.datetime\((\d+(?:, \d+){2,6}), tzinfo=(datetime\.timezone\.utc|"
                     r"datetime\.timezone\(datetime\.timedelta\(0\), 'UTC'\))\)")
_TIME_US = re.compile(r"(?<=time_us=)\d{13,}|(?<=\"time_us\":)\d{13,}")
_HASH = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{128}|[0-9a-f]{64}|[0-9a-f]{32})(?![0-9a-f])")
_HASH_PREFIX = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?=\.\.\.)")
# Masked: any value matches; the groups around the value are kept.
_MASKS = [
    ("duration", re.compile(r'("duration"\s*:\s*)"[^"]*"()')),
    ("seconds", re.compile(r'("seconds"\s*:\s*|\bseconds=)\d+\.\d+(?:e-?\d+)?()')),
    ("pid", re.compile(r"(\(worker )\d+(\))")),
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAMED_UTC = timezone(timedelta(0), "UTC")


@dataclass
class Token:
    """A volatile value in a text: ``kind`` time or hash, its ``value`` (UTC microseconds, or hex)."""

    kind: str
    value: Any
    style: str
    start: int
    end: int


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _moment(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def find_tokens(text: str) -> list[Token]:
    """The times and hashes of a text, in order."""
    found: list[Token] = []
    for m in _RFC3339.finditer(text):
        raw = m.group()
        style = raw[10] + ("Z" if raw.endswith("Z") else raw[-6:])
        found.append(Token("time", _micros(datetime.fromisoformat(raw.replace("Z", "+00:00"))), style,
                           m.start(), m.end()))
    for m in _PYTIME.finditer(text):
        parts = [int(p) for p in m.group(1).split(", ")]
        moment = datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]
        style = "py-utc" if m.group(2).endswith(".utc") else "py-named"
        found.append(Token("time", _micros(moment), style, m.start(), m.end()))
    for m in _TIME_US.finditer(text):
        found.append(Token("time", int(m.group()), "us", m.start(), m.end()))
    for m in _HASH.finditer(text):
        found.append(Token("hash", m.group(), "full", m.start(), m.end()))
    for m in _HASH_PREFIX.finditer(text):
        found.append(Token("hash", m.group(), "prefix", m.start(), m.end()))
    found.sort(key=lambda t: t.start)
    return found


def render_time(us: int, style: str) -> str:
    """A time in the format of ``style`` (what :func:`find_tokens` recorded)."""
    moment = _moment(us)
    if style == "us":
        return str(us)
    if style.startswith("py-"):
        return repr(moment.astimezone(UTC if style == "py-utc" else _NAMED_UTC))
    separator, offset = style[0], style[1:]
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        moment = moment.astimezone(timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))))
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if moment.microsecond:  # as orjson and isoformat() write them
        text += f".{moment.microsecond:06d}"
    return text + offset


def mask(text: str, keep: dict[str, list[str]] | None = None) -> str:
    """``text`` with masked values replaced by a placeholder (``keep``: by the shown ones, in order)."""
    for name, pattern in _MASKS:
        shown = list((keep or {}).get(name, []))

        def put(m: re.Match[str], name: str = name, shown: list[str] = shown) -> str:
            if keep is None:
                return f'{m.group(1)}"«{name}»"{m.group(2)}'
            return shown.pop(0) if shown else m.group()

        text = pattern.sub(put, text)
    return text


def masked_values(text: str) -> dict[str, list[str]]:
    return {name: [m.group() for m in pattern.finditer(text)] for name, pattern in _MASKS}


@dataclass
class Renaming:
    """The correspondence between times and hashes a doc shows and those its run printed (one-to-one)."""

    shown_to_run: dict[tuple[str, Any], Any] = field(default_factory=dict)
    run_to_shown: dict[tuple[str, Any], Any] = field(default_factory=dict)

    def _full(self, token: Token, table: dict[tuple[str, Any], Any]) -> Any:
        """A hash prefix as the full hash it abbreviates, when known."""
        if token.style == "prefix":
            for kind, value in table:
                if kind == "hash" and value.startswith(token.value):
                    return value
        return token.value

    def pair(self, shown: list[Token], run: list[Token]) -> bool:
        """Record that ``shown[i]`` stands for ``run[i]``; False if the two lists cannot correspond."""
        if [(t.kind, t.style) for t in shown] != [(t.kind, t.style) for t in run]:
            return False
        pairs = [((s.kind, self._full(s, self.shown_to_run)), self._full(r, self.run_to_shown))
                 for s, r in zip(shown, run, strict=True)]
        new_forward: dict[tuple[str, Any], Any] = {}
        new_backward: dict[tuple[str, Any], Any] = {}
        for (kind, s), r in pairs:
            forward = self.shown_to_run.get((kind, s), new_forward.get((kind, s), r))
            backward = self.run_to_shown.get((kind, r), new_backward.get((kind, r), s))
            if forward != r or backward != s:
                return False
            new_forward[(kind, s)], new_backward[(kind, r)] = r, s
        self.shown_to_run.update(new_forward)
        self.run_to_shown.update(new_backward)
        return True

    def _times(self, table: dict[tuple[str, Any], Any]) -> list[tuple[int, int]]:
        return sorted((v, w) for (kind, v), w in table.items() if kind == "time")

    def run_time_for(self, shown_us: int) -> int:
        """The run time a shown time in a command stands for: mapped, or placed between its neighbours."""
        known = self.shown_to_run.get(("time", shown_us))
        if known is not None:
            return int(known)
        times = self._times(self.shown_to_run)
        i = bisect.bisect_left(times, (shown_us, -1))
        if 0 < i < len(times):
            (s0, r0), (s1, r1) = times[i - 1], times[i]
            run = r0 + (r1 - r0) * (shown_us - s0) // max(1, s1 - s0)
        elif i > 0:  # after every time seen: just after the latest (the doc's gap means nothing in a run)
            run = times[i - 1][1] + 1
        elif times:
            run = times[0][1] - 1
        else:
            run = shown_us
        self.shown_to_run[("time", shown_us)] = run
        self.run_to_shown[("time", run)] = shown_us
        return run

    def shown_time_for(self, run_us: int) -> int:
        """The shown time for a run time no doc text showed yet: offset from its nearest known neighbour."""
        known = self.run_to_shown.get(("time", run_us))
        if known is not None:
            return int(known)
        times = self._times(self.run_to_shown)
        i = bisect.bisect_left(times, (run_us, -1))
        if i > 0:
            shown = times[i - 1][1] + (run_us - times[i - 1][0])
        elif times:
            shown = times[0][1] - (times[0][0] - run_us)
        else:
            shown = run_us
        self.shown_to_run[("time", shown)] = run_us
        self.run_to_shown[("time", run_us)] = shown
        return shown

    def placeholders(self, text: str, tokens: list[Token], side: str) -> str:
        """``text`` with each token replaced by the id of the shown value it stands for, and its style."""
        ids: dict[tuple[str, Any], int] = {}
        out, pos = [], 0
        for token in tokens:
            if side == "shown":
                key = (token.kind, self._full(token, self.shown_to_run))
            else:
                value = self._full(token, self.run_to_shown)
                key = (token.kind, self.run_to_shown.get((token.kind, value), ("unpaired", value)))
            number = ids.setdefault(key, len(ids))
            out.append(text[pos:token.start])
            out.append(f'"«{token.kind}#{number}|{token.style}»"' if token.style == "us"
                       else f"«{token.kind}#{number}|{token.style}»")
            pos = token.end
        out.append(text[pos:])
        return "".join(out)

    def to_shown(self, text: str) -> str:
        """A printed text with every time and hash replaced by the shown value it stands for (new ones kept)."""
        out, pos = [], 0
        for token in find_tokens(text):
            out.append(text[pos:token.start])
            raw = text[token.start:token.end]
            if token.kind == "time":
                out.append(render_time(self.shown_time_for(token.value), token.style))
            else:
                full = self._full(token, self.run_to_shown)
                shown = self.run_to_shown.get(("hash", full))
                if shown is None:
                    self.run_to_shown[("hash", full)] = self.shown_to_run[("hash", full)] = full
                    shown = full
                out.append(shown[:len(raw)])
            pos = token.end
        out.append(text[pos:])
        return "".join(out)

    def to_run(self, command: str) -> str:
        """A command with the times and hashes the doc shows replaced by the run's."""
        out, pos = [], 0
        for token in find_tokens(command):
            out.append(command[pos:token.start])
            raw = command[token.start:token.end]
            if token.kind == "time":
                out.append(render_time(self.run_time_for(token.value), token.style))
            else:
                full = self._full(token, self.shown_to_run)
                out.append(str(self.shown_to_run.get(("hash", full), full))[:len(raw)])
            pos = token.end
        out.append(command[pos:])
        return "".join(out)


def _json_documents(text: str) -> list[Any] | None:
    """The JSON documents a text holds one after another (member order kept), or None if it is not JSON."""
    decoder = json.JSONDecoder(object_pairs_hook=lambda pairs: ("{}", pairs))
    docs, pos, text = [], 0, text.strip()
    while pos < len(text):
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        docs.append(doc)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs or None


_JSON_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|[{}\[\]:,]')


def keep_layout(shown: str, printed: str) -> str:
    """``printed`` laid out as ``shown`` is (lines and indents), when both are JSON with the same structure.

    A doc wraps long answers by hand; a regenerated output whose members and punctuation are those of
    the shown one keeps its line breaks, with the new values. Otherwise ``printed`` is returned.
    """
    if _json_documents(shown) is None or _json_documents(printed) is None:
        return printed
    old, new = list(_JSON_TOKEN.finditer(shown)), _JSON_TOKEN.findall(printed)
    if len(old) != len(new) or any(o.group() != n for o, n in zip(old, new, strict=True)
                                   if o.group() in "{}[]:," or n in "{}[]:,"):
        return printed
    out, pos = [], 0
    for o, n in zip(old, new, strict=True):
        out.append(shown[pos:o.start()])
        out.append(n)
        pos = o.end()
    out.append(shown[pos:])
    return "".join(out)


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").split("\n")] if text.strip() else []


def same_output(shown: str, printed: str, renaming: Renaming) -> bool:
    """Whether a printed output is what the doc shows, up to masked and renamed values (learns the renaming)."""
    shown_tokens, printed_tokens = find_tokens(shown), find_tokens(printed)
    if not renaming.pair(shown_tokens, printed_tokens):
        return False
    a = mask(renaming.placeholders(shown, shown_tokens, "shown"))
    b = mask(renaming.placeholders(printed, printed_tokens, "run"))
    ja, jb = _json_documents(a), _json_documents(b)
    if ja is not None and jb is not None:
        return ja == jb
    return _lines(a) == _lines(b)


# --------------------------------------------------------------------------- running

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DocServer:
    """A ``strata serve`` of this checkout (one worker) on a free port, with its store in ``directory/data``."""

    def __init__(self, directory: Path, env: dict[str, str], extra: list[str] | None = None) -> None:
        import http.client

        self.port = _free_port()
        self.log_path = directory.parent / "server.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the server's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--data", str(directory / "data"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1", "--no-sync", *(extra or [])],
            cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60  # a start-up guard: it only bounds a hang
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strata serve exited with {self.proc.returncode}: {self.log_path.read_text()}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"strata serve did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Segment:
    """The examples between two ``fresh store`` markers: directories, a server on demand, one renaming."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shell_dir = root / "sh"
        self.python_dir = root / "py"
        bin_dir = root / "bin"
        for d in (self.shell_dir, self.python_dir, bin_dir):
            d.mkdir(parents=True)
        for name, command in (("strata", f'"{sys.executable}" -m server'), ("python", f'"{sys.executable}"'),
                              ("python3", f'"{sys.executable}"')):
            (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
            (bin_dir / name).chmod(0o755)
        # curl prints no newline after a body: several answers of one block would share a line.
        (root / ".curlrc").write_text('write-out = "\\n"\n')
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                    "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
                    "CURL_HOME": str(root), "NO_COLOR": "1", "COLUMNS": "100", "TZ": "UTC"}
        for name in [n for n in self.env if n.startswith("STRATA_")]:  # the doc's commands say what they use
            del self.env[name]
        self.server: DocServer | None = None
        self.renaming = Renaming()
        self.python_outputs: dict[int, str] = {}

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    def normalise(self, printed: str, directory: Path) -> str:
        printed = printed.replace(str(directory), SHOWN_DIR)
        if self.server is not None:
            printed = re.sub(rf"\b(localhost|127\.0\.0\.1):{self.server.port}\b", rf"\1:{SHOWN_PORT}", printed)
        return printed

    def run_shell(self, block: Block) -> str:
        if block.serve_args is not None:
            if self.server is not None:
                self.server.stop()
            self.server = DocServer(self.shell_dir, self.env, shlex.split(block.serve_args))
        if self.server is None:
            self.server = DocServer(self.shell_dir, self.env)
        command = self.renaming.to_run(block.body)
        command = command.replace(SHOWN_DIR, str(self.shell_dir))
        command = re.sub(rf"\b(localhost|127\.0\.0\.1):{SHOWN_PORT}\b", rf"\1:{self.server.port}", command)
        try:
            done = subprocess.run(["bash", "--noprofile", "--norc", "-c", command], cwd=self.shell_dir, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
            printed = done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as exc:
            printed = (exc.stdout or b"").decode("utf-8", "replace") + f"\n[timed out after {BLOCK_TIMEOUT} s]"
        return self.normalise(printed, self.shell_dir)

    def run_python(self, blocks: list[Block], doc: Path) -> None:
        """Runs every Python block of the segment in one interpreter (their order is the doc's)."""
        if not blocks:
            return
        request = [{"code": b.body, "name": f"{doc.name}:{b.number}"} for b in blocks]
        result = self.root / "python-result.json"
        done = subprocess.run([sys.executable, "-m", "tests.docs_examples", "--exec-python", str(result)],
                              input=json.dumps(request).encode(), cwd=self.python_dir, env=self.env,
                              capture_output=True, timeout=BLOCK_TIMEOUT * max(1, len(blocks)))
        if not result.exists():
            raise RuntimeError(f"the Python examples of {doc.name} did not run: {done.stderr.decode()}")
        outputs = json.loads(result.read_text())
        for block, printed in zip(blocks, outputs, strict=True):
            self.python_outputs[block.open_line] = self.normalise(printed, self.python_dir)


def exec_python(result_path: str) -> None:
    """``--exec-python``: runs the blocks given on stdin in one namespace, writes what each printed."""
    request = json.loads(sys.stdin.read())
    sys.path.insert(0, os.getcwd())
    namespace: dict[str, Any] = {"__name__": "__main__"}
    outputs = []
    for item in request:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            try:
                exec(compile(item["code"], item["name"], "exec"), namespace)
            except Exception as exc:
                print("Traceback (most recent call last):\n  ...")
                print("".join(traceback.format_exception_only(exc)).rstrip())
        outputs.append(buffer.getvalue())
    Path(result_path).write_text(json.dumps(outputs))


# --------------------------------------------------------------------------- a doc

@dataclass
class Difference:
    """An example whose output differs from what its doc shows."""

    line: int
    command: str
    shown: str
    printed: str

    def __str__(self) -> str:
        return (f"line {self.line}: {self.command.strip().splitlines()[0][:100]}\n"
                f"--- the doc shows:\n{self.shown.rstrip()}\n--- the run printed:\n{self.printed.rstrip()}")


@dataclass
class DocReport:
    """What checking a doc found; ``updated`` is the doc rewritten with the printed outputs."""

    path: Path
    problems: list[str]
    differences: list[Difference]
    updated: str


def check_doc(path: Path, *, workdir: Path | None = None) -> DocReport:
    """Runs every example of a doc in order (a fresh store per segment) and compares the outputs."""
    text = path.read_text()
    blocks = parse_blocks(text)
    steps, problems = plan(blocks)
    differences: list[Difference] = []
    edits: list[tuple[int, int, list[str]]] = []  # replace lines [start, end) by these
    lines = text.split("\n")
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="strata-docs-", dir=workdir)))
        segments: dict[int, Segment] = {}

        def segment_of(block: Block) -> Segment:
            if block.segment not in segments:
                seg = Segment(base / f"segment-{block.segment}")
                stack.callback(seg.close)
                segments[block.segment] = seg
                seg.run_python([s.block for s in steps if s.block.segment == block.segment
                                and s.block.lang in PYTHON_LANGS], path)
            return segments[block.segment]

        for block in blocks:
            if block.file_name is not None and block.not_run is None:
                seg = segment_of(block)
                (seg.shell_dir / block.file_name).write_text(block.body + "\n")
            for step in steps:
                if step.block is block:
                    _run_step(step, segment_of(block), lines, differences, edits)
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = new
    return DocReport(path, problems, differences, "\n".join(lines))


def _run_step(step: Step, seg: Segment, lines: list[str], differences: list[Difference],
              edits: list[tuple[int, int, list[str]]]) -> None:
    block = step.block
    printed = seg.python_outputs[block.open_line] if block.lang in PYTHON_LANGS else seg.run_shell(block)
    shown = step.output.body if step.output is not None else ""
    if same_output(shown, printed, seg.renaming):
        return
    differences.append(Difference(block.number, block.body, shown, printed))
    new_body = keep_layout(shown, mask(seg.renaming.to_shown(printed), keep=masked_values(shown))).strip("\n")
    if step.output is not None:
        out = step.output
        body = [out.indent + line if line else line for line in new_body.split("\n")] if new_body else []
        edits.append((out.open_line + 1, out.close_line, body))
    elif new_body:
        lang = "json" if new_body[0] in "{[" and _json_documents(new_body) is not None else "text"
        fence = block.indent + block.fence
        body = [block.indent + line if line else line for line in new_body.split("\n")]
        edits.append((block.close_line + 1, block.close_line + 1, [f"{fence}{lang} output", *body, fence]))
    # What the doc will show from now on is what later examples refer to.
    seg.renaming.pair(find_tokens(new_body), find_tokens(printed))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.docs_examples",
                                     description="Run the fenced examples of the docs and compare their outputs.")
    parser.add_argument("files", nargs="*", type=Path, help="docs to check (default: README.md and docs/*.md)")
    parser.add_argument("--update", action="store_true", help="rewrite the docs' outputs with what the code prints")
    parser.add_argument("--exec-python", metavar="RESULT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exec_python:
        exec_python(args.exec_python)
        return 0
    status = 0
    for path in [p.resolve() for p in args.files] or DOCS:
        report = check_doc(path)
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        for problem in report.problems:
            print(f"{name}: {problem}")
            status = 1
        for difference in report.differences:
            print(f"{name}: {difference}\n")
        if args.update and report.updated != path.read_text():
            path.write_text(report.updated)
            print(f"{name}: {len(report.differences)} output(s) rewritten")
        elif report.differences:
            status = 1
        if not report.problems and not report.differences:
            print(f"{name}: ok")
    return status


if __name__ == "__main__":
    sys.exit(main())
