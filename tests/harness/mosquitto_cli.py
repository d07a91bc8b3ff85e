"""Wrappers around the real mosquitto command-line clients, which users will use to watch
the daemon."""

from __future__ import annotations

import subprocess

_EXIT_TIMED_OUT = 27  # mosquitto_sub -W expired


def mosquitto_sub_one(
    host: str, port: int, topic: str, timeout_s: int = 5, *, qos: int = 0
) -> tuple[str, bytes] | None:
    """`mosquitto_sub -C 1 -W timeout_s -v`: the first (topic, payload) seen, None on timeout.

    Uses the real client users will use; retained messages count.
    """
    proc = subprocess.run(
        [
            "mosquitto_sub",
            *("-h", host, "-p", str(port), "-t", topic, "-q", str(qos)),
            *("-C", "1", "-W", str(timeout_s), "-v", "-N"),
        ],
        capture_output=True,
        timeout=timeout_s + 10,
        check=False,
    )
    if proc.returncode == _EXIT_TIMED_OUT and not proc.stdout:
        return None
    if proc.returncode != 0:
        raise RuntimeError(
            f"mosquitto_sub exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
        )
    got_topic, _, payload = proc.stdout.partition(b" ")
    return got_topic.decode("utf-8"), payload


def mosquitto_pub(
    host: str,
    port: int,
    topic: str,
    payload: bytes | str,
    *,
    qos: int = 1,
    retain: bool = False,
) -> None:
    """Publish with the real `mosquitto_pub` (payload from stdin, so bytes pass unchanged)."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    args = ["mosquitto_pub", "-h", host, "-p", str(port), "-t", topic, "-q", str(qos)]
    args.append("-s" if data else "-n")  # -s refuses empty input; -n sends a null message
    if retain:
        args.append("-r")
    proc = subprocess.run(args, input=data, capture_output=True, check=False, timeout=15)
    if proc.returncode != 0:
        raise RuntimeError(
            f"mosquitto_pub exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
        )
