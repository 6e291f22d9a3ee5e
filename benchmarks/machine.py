"""Machine and software facts recorded with every run, so figures are never quoted without context."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _fs_type(path: Path) -> str:
    """File system of the benchmark directory: fsync cost depends on it (tmpfs would make it free)."""
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.splitlines()[1].split()[1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cmd_version(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def machine_info(workdir: Path) -> dict[str, object]:
    root = Path(__file__).resolve().parents[1]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "filesystem": _fs_type(workdir),
        "load_avg_1m_at_start": load,
        "git_commit": _git_commit(root),
        "versions": {
            "lmdb (py-lmdb)": _version("lmdb"),
            "msgpack": _version("msgpack"),
            "ormsgpack": _version("ormsgpack"),
            "sqlite": sqlite3.sqlite_version,
            "diskcache": _version("diskcache"),
            "gunicorn": _version("gunicorn"),
            "etcd": _cmd_version(["etcd", "--version"]).replace("etcd Version: ", ""),
            "wrk": " ".join(_cmd_version(["wrk", "--version"]).split()[:2]),
        },
    }
