"""Loopback ports for servers started by tests."""

from __future__ import annotations

import socket
import subprocess
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free on `host` a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_listener(
    host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until `host:port` accepts a TCP connection.

    Between attempts it waits on `proc` (if given) for 10 ms, so a server that dies during
    start-up is reported at once instead of after the whole timeout. Raises TimeoutError, or
    RuntimeError when `proc` exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port}: {last_error}")
        if proc is None:
            time.sleep(0.01)
            continue
        try:
            rc = proc.wait(timeout=0.01)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"server exited with status {rc} before listening on {host}:{port}")
