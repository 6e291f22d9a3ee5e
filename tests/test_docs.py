"""The docs' examples run and print what the docs show (see tests/docs_examples.py for the conventions).

``test_doc_examples`` runs every fenced example of README.md and docs/*.md: shell examples against a
real ``strata serve`` on a fresh store, Python examples in one interpreter per doc. After a change of
behaviour, ``python -m tests.docs_examples --update`` rewrites the shown outputs from what the code prints.
The other tests pin the comparison itself: what it tolerates (times, hashes, durations) and what it must
catch (a tx, key, value, status or error code that changed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_examples import (
    DOCS,
    REPO,
    Renaming,
    check_doc,
    keep_layout,
    parse_blocks,
    plan,
    same_output,
)

REGENERATE = "python -m tests.docs_examples --update"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_doc_examples(doc: Path, tmp_path: Path) -> None:
    report = check_doc(doc, workdir=tmp_path)
    if report.problems:
        pytest.fail("\n".join(report.problems), pytrace=False)
    if report.differences:
        pytest.fail(f"{len(report.differences)} example(s) of {doc.name} print something else than the doc shows "
                    f"(if the new output is right: {REGENERATE} {doc.relative_to(REPO)}):\n\n"
                    + "\n\n".join(str(d) for d in report.differences), pytrace=False)


def test_every_doc_is_checked() -> None:
    assert {p.name for p in DOCS} >= {"README.md", "http-api.md", "engine.md", "audit.md", "lifecycle.md"}
    assert set(DOCS) == {REPO / "README.md", *(REPO / "docs").glob("*.md")}


# --------------------------------------------------------------------------- the conventions

def test_a_block_that_is_neither_run_nor_marked_is_reported() -> None:
    text = "\n".join([
        "```js", "fetch('/x')", "```",
        "<!-- not run: a browser example -->", "```js", "fetch('/y')", "```",
        "<!-- not run: -->", "```sh", "strata serve", "```",
        "```sh", "echo hi", "```", "```text output", "hi", "```",
        "<!-- not run: starts a server -->", "```sh", "strata serve", "```", "```text output", "x", "```",
        "```python file=tamper.py", "print(1)", "```",
    ])
    steps, problems = plan(parse_blocks(text))
    assert [s.block.body for s in steps] == ["echo hi"]
    assert steps[0].output is not None and steps[0].output.body == "hi"
    assert problems == [
        "line 1: a ```js block is neither run (sh, python, file=NAME) nor marked <!-- not run: REASON -->",
        "line 9: 'not run' needs a reason",
        "line 22: an output block that follows no example that runs",
    ]


def test_an_output_may_follow_prose_but_not_another_block() -> None:
    text = "```sh\ncurl x\n```\n`201 Created`:\n```json output\n{}\n```\n"
    steps, problems = plan(parse_blocks(text))
    assert steps[0].output is not None and not problems


# --------------------------------------------------------------------------- what the comparison tolerates

def same(shown: str, printed: str, renaming: Renaming | None = None) -> bool:
    return same_output(shown, printed, renaming or Renaming())


def test_durations_and_timings_are_masked() -> None:
    assert same('{"tx":1,"count":2,"duration":"17.854677ms"}', '{"tx":1,"count":2,"duration":"0.5ms"}')
    assert same('{"mode":"resume","seconds":0.0003,"pending":false}',
                '{"mode":"resume","seconds":2.1e-05,"pending":false}')
    assert same("CompactionReport(horizon=4, seconds=0.0014957)", "CompactionReport(horizon=4, seconds=9.7813e-05)")
    assert same(": strata changes of ledger after tx 3 (worker 9578)",
                ": strata changes of ledger after tx 3 (worker 12)")


def test_json_is_compared_as_json_so_a_doc_may_wrap_it() -> None:
    assert same('{"data":[{"key":"a","tx":1},\n         {"key":"b","tx":1}],\n "count":2}',
                '{"data":[{"key":"a","tx":1},{"key":"b","tx":1}],"count":2}')
    assert not same('{"count":2,"data":[]}', '{"data":[],"count":2}'), "member order is part of the answer"


def test_times_and_hashes_are_renamed_consistently() -> None:
    renaming = Renaming()
    h1, h2 = "a" * 64, "b" * 64
    assert same(f'{{"tx":1,"time":"2026-11-23T08:05:46.083416Z","hash":"{h1}"}}',
                f'{{"tx":1,"time":"2026-11-30T01:00:00.5Z","hash":"{h2}"}}', renaming)
    # The same shown values must stand for the same printed ones later on, also abbreviated.
    assert same(f"receipt 1:{h1[:16]}... at 2026-11-23T08:05:46.083416Z",
                f"receipt 1:{h2[:16]}... at 2026-11-30T01:00:00.5Z", renaming)
    assert not same(f'{{"hash":"{h1}"}}', f'{{"hash":"{"c" * 64}"}}', renaming)
    assert not same('{"time":"2026-11-23T08:05:46.083416Z"}', '{"time":"2026-11-30T02:00:00Z"}', renaming)
    # Two different shown times cannot stand for one printed time.
    assert not same('{"a":"2026-11-23T09:00:00Z","b":"2026-11-23T10:00:00Z"}',
                    '{"a":"2026-11-30T01:00:00Z","b":"2026-11-30T01:00:00Z"}')
    assert not same('{"time":"2026-11-23T08:16:11+00:00"}', '{"time":"2026-11-23T08:16:11Z"}'), "a format change shows"
    assert same("at 2026-11-23 08:16:11.5+00:00", "at 2026-11-30 01:00:00+00:00")


def test_commands_get_the_run_values_of_what_the_doc_showed() -> None:
    renaming = Renaming()
    h_shown, h_run = "a" * 64, "b" * 64
    assert same(f"tx 2 2026-11-23T08:00:02Z {h_shown}\ntx 3 2026-11-23T08:00:12Z",
                f"tx 2 2026-11-30T01:00:00.000100Z {h_run}\ntx 3 2026-11-30T01:00:00.000300Z", renaming)
    command = renaming.to_run(f"strata verify --receipt 2:{h_shown}; curl '/v4/tx?at=2026-11-23T08:00:07Z'")
    # A time between two shown commits goes between the two run commits, in the same proportion.
    assert command == f"strata verify --receipt 2:{h_run}; curl '/v4/tx?at=2026-11-30T01:00:00.000200Z'"
    # ... and the server's echo of it reads as the shown time again.
    assert same('{"at":"2026-11-23T08:00:07Z"}', '{"at":"2026-11-30T01:00:00.000200Z"}', renaming)


# --------------------------------------------------------------------------- what the comparison must catch

SHOWN = ('{"type":"urn:strata:problem:KEY_NOT_FOUND","status":404,"errors":[{"location":"query.key",'
         '"value":"counter"}],"code":"KEY_NOT_FOUND","tx":7,"duration":"1ms"}')


@pytest.mark.parametrize("change", [
    ('"tx":7', '"tx":8'),
    ('"value":"counter"', '"value":"counters"'),
    ('"status":404', '"status":400'),
    ('"code":"KEY_NOT_FOUND"', '"code":"NOT_FOUND"'),
    ('"location":"query.key"', '"location":"/key"'),
    ('"errors":[{"location":"query.key","value":"counter"}]', '"errors":[]'),
])
def test_a_changed_tx_key_value_status_or_code_is_a_difference(change: tuple[str, str]) -> None:
    assert same(SHOWN, SHOWN.replace('"1ms"', '"3.2ms"'))
    assert not same(SHOWN, SHOWN.replace(*change))


def test_text_output_is_compared_line_by_line() -> None:
    shown = "history of ledger/acct:1: 2 version(s), newest first\n  tx 2  put  80\n  tx 1  put  100\n"
    assert same(shown, shown.replace("  \n", "\n") + "\n")
    assert not same(shown, shown.replace("put  80", "put  81"))
    assert not same(shown, shown + "  tx 0  put  1\n")
    assert not same("", "something printed that the doc does not show")


def test_a_regenerated_json_output_keeps_the_doc_layout() -> None:
    shown = '{"tx":3,"errors":[\n  {"index":1}],\n "duration":"1ms"}'
    assert keep_layout(shown, '{"tx":2,"errors":[{"index":1}],"duration":"5ms"}') == \
        '{"tx":2,"errors":[\n  {"index":1}],\n "duration":"5ms"}'
    changed = '{"tx":2,"errors":[{"index":1},{"index":2}],"duration":"5ms"}'
    assert keep_layout(shown, changed) == changed


# --------------------------------------------------------------------------- end to end, on a doc of its own

def test_drift_is_reported_and_update_rewrites_only_what_changed(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("\n".join([
        "# A doc", "",
        "```python", "from datetime import UTC, datetime", "x = 41", "print(x + 1, repr(datetime.now(UTC)))", "```",
        "```text output", "41 datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc)", "```", "",
        "```python", "print(x)", "```", "",
        "<!-- fresh store -->", "",
        "```python", "print('x' in globals())", "```",
        "```text output", "False", "```", "",
    ]))
    report = check_doc(doc, workdir=tmp_path)
    assert not report.problems
    assert [(d.line, d.shown, d.printed) for d in report.differences] == [
        (3, "41 datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc)",
         report.differences[0].printed),
        (12, "", "41\n"),
    ]
    assert report.differences[0].printed.startswith("42 datetime.datetime(")
    # The rewrite keeps the shown time (it stands for whatever the run printed) and adds the missing output.
    assert report.updated.split("\n")[7:17] == [
        "```text output", "42 datetime.datetime(2026, 11, 23, 9, 0, tzinfo=datetime.timezone.utc)", "```", "",
        "```python", "print(x)", "```", "```text output", "41", "```",
    ]
    doc.write_text(report.updated)
    again = check_doc(doc, workdir=tmp_path)
    assert not again.differences and again.updated == report.updated
