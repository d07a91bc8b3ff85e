"""The machine and the versions a benchmark ran with (read-only look-ups)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

from bench.stack import REPO

PACKAGES = (
    "websockets",
    "paho-mqtt",
    "pydantic",
    "httpx",
    "pyalsaaudio",
    "systemd-python",
    "assemblyai",
)


def _first_line(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line
    except OSError:
        pass
    return "?"


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "?"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip()


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def machine() -> dict[str, str]:
    mem_kb = _first_line("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "?"
    return {
        "CPU": _first_line("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "memory": mem,
        "OS": _os_name(),
        "kernel": platform.release(),
        "arch": platform.machine(),
    }


def versions() -> dict[str, str]:
    import edgecap

    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    found: dict[str, str] = {
        "edgecap": f"{edgecap.__version__} (commit {commit}{', modified' if dirty else ''})",
        "Python": platform.python_version(),
    }
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    mosquitto = _run(["mosquitto", "-h"]).splitlines()
    found["mosquitto"] = mosquitto[0].removeprefix("mosquitto version ") if mosquitto else "?"
    found["alsa-lib"] = _run(["dpkg-query", "-W", "-f", "${Version}", "libasound2"])
    return found
