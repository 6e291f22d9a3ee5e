"""A stop signal that reaches a worker before its signal handlers are installed is not lost.

gunicorn forks a worker, which installs its own handlers some time later; a SIGTERM from the
master in between used to run the master's inherited handler in the child and vanish, and the
worker served on until the master killed it at the end of its graceful timeout. The server here
(:mod:`tests.server.slow_birth`) widens that window to a second; the master is stopped inside it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["threads", "sync"])
def test_a_worker_stopped_before_its_handlers_exist_exits_on_the_signal(tmp_path: Path, kind: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.server.slow_birth", str(tmp_path / "data"),
                             str(free_port()), kind], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    log = []
    for line in proc.stdout:  # the child logs its birth, then sleeps a second before its handlers
        log.append(line.decode())
        if "Booting worker" in log[-1]:
            break
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    text = "".join(log) + out.decode()
    assert proc.returncode == 0, text
    assert "was sent SIGKILL" not in text, text  # lost signal: killed after the graceful timeout
    assert "Worker exiting" in text and "Shutting down: Master" in text, text
