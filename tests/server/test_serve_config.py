"""``strata serve`` checks its settings before touching anything, takes them from the environment
(flags win), states them at start-up, and opens no shared gunicorn control socket. Real processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from server.serve_config import ServeConfigError, check_bindable, resolve
from tests.server.conftest import REPO, free_port, http_request, stop_server


def serve_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *sys.path])
    env["XDG_RUNTIME_DIR"] = str(tmp / "xdg")  # where gunicorn 25+ would put its control socket
    (tmp / "xdg").mkdir(exist_ok=True)
    env.update(extra)
    return env


def run_serve(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m server serve ARGS`` expected to refuse (and so to exit on its own)."""
    return subprocess.run([sys.executable, "-m", "server", "serve", "--no-sync", *args], cwd=tmp,
                          env=serve_env(tmp, **env), capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    err = done.stderr
    assert err.startswith("strata serve: ") and err.count("\n") == 1, err  # one line, no traceback
    assert "Traceback" not in err and "ERROR" not in err and done.stdout == ""
    for word in words:
        assert word in err, (word, err)
    return err


def test_a_port_in_use_is_refused_at_once_with_advice(tmp_path: Path) -> None:
    with listening() as port:
        done = run_serve(tmp_path, "--data", str(tmp_path / "d"), "--port", str(port))
    refused(done, f"127.0.0.1:{port} is already in use", "give another --port")
    assert not (tmp_path / "d").exists()  # checked before the data directory was created


def test_a_regular_file_as_data_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    refused(run_serve(tmp_path, "--data", str(tmp_path / "plain"), "--port", str(free_port())),
            "is a file, not a directory")
    refused(run_serve(tmp_path, "--data", str(tmp_path / "plain" / "sub"), "--port", str(free_port())),
            "cannot be created", "is a file")
    assert (tmp_path / "plain").read_text() == "x"


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_a_port_out_of_range_is_refused(tmp_path: Path, port: str) -> None:
    refused(run_serve(tmp_path, "--data", str(tmp_path / "d"), f"--port={port}"), "--port must be a whole number "
            "1 to 65535", repr(port))
    assert not (tmp_path / "d").exists()


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    refused(run_serve(tmp_path, STRATA_PORT="99999", STRATA_DATA=str(tmp_path / "d")), "STRATA_PORT must be")
    refused(run_serve(tmp_path, STRATA_WORKERS="0", STRATA_DATA=str(tmp_path / "d")), "STRATA_WORKERS must be")
    assert not (tmp_path / "d").exists()


def test_settings_resolve_flag_then_environment_then_default() -> None:
    flags = Namespace(data="/f", host=None, port="9001", workers=None)
    env = {"STRATA_DATA": "/e", "STRATA_HOST": "::1", "STRATA_PORT": "9002", "STRATA_WORKERS": "3"}
    config = resolve(flags, env)
    assert (config.data, config.host, config.port, config.workers) == ("/f", "::1", 9001, 3)
    assert config.sources == {"data": "flag", "host": "STRATA_HOST", "port": "flag", "workers": "STRATA_WORKERS"}
    assert config.url == "http://[::1]:9001"
    none = Namespace(data=None, host=None, port=None, workers=None)
    default = resolve(none, {"STRATA_PORT": " "})  # empty counts as unset
    assert (default.data, default.host, default.port) == ("./data", "127.0.0.1", 8080)
    assert 2 <= default.workers <= 8
    with pytest.raises(ServeConfigError, match="--workers must be"):
        resolve(Namespace(data=None, host=None, port=None, workers="two"), {})


def test_an_unknown_host_is_refused() -> None:
    with pytest.raises(ServeConfigError, match="not an address of this machine"):
        check_bindable("no-such-host.invalid", free_port())


def test_environment_configures_a_live_server_and_the_start_up_log_says_so(tmp_path: Path) -> None:
    with listening() as busy:
        port = free_port()
        keys = tmp_path / "keys.json"
        keys.write_bytes(orjson.dumps({"keys": [{"name": "admin", "key": "admin-key-0123456789", "scope": "admin"}]}))
        env = serve_env(tmp_path, STRATA_DATA=str(tmp_path / "envdata"), STRATA_HOST="127.0.0.1",
                        STRATA_PORT=str(busy), STRATA_WORKERS="1", STRATA_KEYS_FILE=str(keys))
        log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
        # --port wins over STRATA_PORT (which names a port in use and would be refused)
        proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--no-sync", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60  # a start-up guard against a hang, not a timing assertion
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                with contextlib.suppress(OSError):
                    if http_request(port, "GET", "/healthz")[0] == 200:
                        break
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.05)
            assert http_request(port, "GET", "/v4/namespace/storage")[0] == 401  # the keys file was read
        finally:
            stop_server(proc)
            log.close()
    text = (tmp_path / "server.log").read_text()
    assert (f"strata serve: data {tmp_path / 'envdata'}, listening on http://127.0.0.1:{port}, 1 worker(s) x 16 "
            f"thread(s), API keys required (1 from {keys})") in text, text
    assert (tmp_path / "envdata" / "data.mdb").is_file()
    assert "Control socket" not in text and list((tmp_path / "xdg").iterdir()) == []
    assert "Booting worker" in text and text.count("Booting worker") == 1


def test_the_start_up_log_says_when_keys_are_not_required(tmp_path: Path) -> None:
    from tests.server.conftest import start_server

    server = start_server(tmp_path)
    try:
        text = (tmp_path / "server.log").read_text()
    finally:
        stop_server(server.proc)
    assert f"listening on http://127.0.0.1:{server.port}, 2 worker(s)" in text
    assert "API keys not required (auth off)" in text and "Control socket" not in text
