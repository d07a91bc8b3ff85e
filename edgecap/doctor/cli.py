"""Argument parsing for ``edgecap doctor`` and ``edgecap devices`` (imports nothing heavy:
the checks are loaded only when one of these commands runs)."""

from __future__ import annotations

import argparse
from typing import Any


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 3600 seconds, got {text}")
    return value


def add_subparsers(sub: Any) -> None:
    """Add ``doctor`` and ``devices`` to the ``edgecap`` sub-command parsers."""
    doctor = sub.add_parser(
        "doctor",
        help="diagnose config, microphone, token service, streaming, MQTT and systemd; "
        "exit 0 only if every required check passes",
    )
    doctor.add_argument("--config", help="config file (same default as run)")
    doctor.add_argument("--json", action="store_true", help="print the results as JSON")
    doctor.add_argument(
        "--listen",
        type=_seconds,
        metavar="SECONDS",
        help="also stream that many seconds from the microphone and print the turns",
    )
    doctor.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="timeout of each network step (default: the configured timeouts; MQTT 5 s)",
    )
    doctor.add_argument(
        "--record",
        type=_seconds,
        metavar="SECONDS",
        help="how long the audio check records (default 2)",
    )
    devices = sub.add_parser(
        "devices",
        help="list ALSA capture devices with stable names, accepted formats and rates, "
        "and the config line to use",
    )
    devices.add_argument("--json", action="store_true", help="print the devices as JSON")


def run(args: argparse.Namespace) -> int:
    if args.command == "devices":
        from edgecap.audio.devices import devices_command

        return devices_command(as_json=args.json)
    from edgecap.doctor.command import doctor_command

    return doctor_command(
        args.config,
        as_json=args.json,
        listen_seconds=args.listen,
        timeout=args.timeout,
        record_seconds=args.record,
    )
