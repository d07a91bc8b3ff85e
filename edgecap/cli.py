"""Command line: `edgecap run | check-config | simulate | doctor | devices`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgecap import __version__

EX_OK = 0
EX_CONFIG = 78  # sysexits.h EX_CONFIG: the unit's RestartPreventExitStatus


def _build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; `command="run"` (the daemon) registers the other tools' sub-commands
    by name only: the same usage line, without importing the simulators and the doctor into
    the daemon for good (about 0.6 MB resident)."""
    parser = argparse.ArgumentParser(
        prog="edgecap",
        description="Edge speech capture: ALSA -> AssemblyAI v3 streaming -> MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"edgecap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    run.add_argument(
        "--config",
        help="config file (default: $EDGECAP_CONFIG, "
        "$CONFIGURATION_DIRECTORY/edgecap.toml, /etc/edgecap/edgecap.toml)",
    )

    check = sub.add_parser("check-config", help="validate the config; exit 0 if valid, 78 if not")
    check.add_argument("--config", help="config file (same default as run)")
    check.add_argument(
        "--effective",
        action="store_true",
        help="also show the run-time settings in force: the file's, or those changed over "
        "MQTT (saved in state_dir/settings.json)",
    )

    if command == "run":
        for name in ("simulate", "doctor", "devices"):
            sub.add_parser(name)
        return parser

    from edgecap.sim.cli import add_subparser as add_simulate

    add_simulate(sub)

    from edgecap.doctor.cli import add_subparsers as add_doctor

    add_doctor(sub)  # doctor, devices
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _build_parser(argv[0] if argv else None).parse_args(argv)
    if args.command == "check-config":
        from edgecap.config import check_config_command

        return check_config_command(args.config, effective=args.effective)
    if args.command == "run":
        from edgecap.app.daemon import run_command

        return run_command(args.config)
    if args.command == "simulate":
        from edgecap.sim.cli import run as run_simulate

        return run_simulate(args)
    if args.command in ("doctor", "devices"):
        from edgecap.doctor.cli import run as run_doctor

        return run_doctor(args)
    return EX_CONFIG  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
