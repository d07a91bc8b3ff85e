"""`edgecap-tokens`: serve the token service, and manage its devices.

edgecap-tokens [--config FILE] serve
edgecap-tokens [--config FILE] check-config
edgecap-tokens [--config FILE] device add NAME      # the credential alone on stdout, once
edgecap-tokens [--config FILE] device rotate NAME   # a new credential; the old one dies
edgecap-tokens [--config FILE] device revoke NAME   # at once, on every replica
edgecap-tokens [--config FILE] device deny|allow NAME
edgecap-tokens [--config FILE] device list [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from edgecap.tokenservice.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    LoadedService,
    ServiceConfigError,
    load_service_config,
)
from edgecap.tokenservice.credentials import credential_hash, new_credential, valid_device_name
from edgecap.tokenservice.policy import utc_day
from edgecap.tokenservice.store import DeviceExistsError, DeviceRow, Store

EX_CONFIG = 78
EX_USAGE = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgecap-tokens",
        description="The central token service for an edgecap fleet (KeyPool-compatible).",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"the TOML config (default ${CONFIG_ENV} or {DEFAULT_CONFIG})",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service")
    sub.add_parser("check-config", help="validate the config and the API keys, then exit")
    device = sub.add_parser("device", help="manage device credentials").add_subparsers(
        dest="action", required=True
    )
    for action, text in (
        ("add", "create a device; prints its credential alone on stdout, once"),
        ("rotate", "give a device a new credential (printed once); the old one stops working"),
        ("revoke", "revoke a device's credential at once"),
        ("deny", "refuse a device without revoking its credential"),
        ("allow", "let a denied device in again"),
    ):
        device.add_parser(action, help=text).add_argument("name")
    listing = device.add_parser("list", help="devices with today's usage (UTC day)")
    listing.add_argument("--json", action="store_true", help="one JSON object per device")
    return p


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(row: DeviceRow) -> dict[str, object]:
    return {
        "name": row.name,
        "state": row.state,
        "created": _when(row.created_at),
        "last_used": _when(row.last_used_at),
        "tokens_today": row.tokens_today,
        "billed_seconds_today": round(row.metered_seconds_today + row.estimated_seconds_today),
        "metered_seconds_today": round(row.metered_seconds_today, 1),
        "estimated_seconds_today": round(row.estimated_seconds_today),
    }


def list_devices(store: Store, as_json: bool) -> int:
    rows = [_row(r) for r in store.list_devices(utc_day(time.time()))]
    if as_json:
        for entry in rows:
            print(json.dumps(entry))
        return 0
    head = ("NAME", "STATE", "CREATED", "LAST USED", "TOKENS", "BILLED s (metered+estimated)")
    print("{:<24} {:<8} {:<21} {:<21} {:>7}  {}".format(*head))
    for e in rows:
        billed = f"{e['billed_seconds_today']} ({e['metered_seconds_today']}+"
        billed += f"{e['estimated_seconds_today']})"
        print(
            f"{e['name']!s:<24} {e['state']!s:<8} {e['created']!s:<21} {e['last_used']!s:<21} "
            f"{e['tokens_today']!s:>7}  {billed}"
        )
    return 0


def device_command(store: Store, action: str, name: str) -> int:
    problem = valid_device_name(name)
    if problem is not None:
        print(f"edgecap-tokens: device name {name!r} {problem}", file=sys.stderr)
        return EX_USAGE
    if action == "add":
        credential = new_credential()
        try:
            store.add_device(name, credential_hash(credential), time.time())
        except DeviceExistsError:
            print(f"edgecap-tokens: device {name} exists; use `device rotate`", file=sys.stderr)
            return 1
        print(credential)
        print(
            f"device {name} added; its credential (above, on stdout) is shown only this once: "
            "put it in the device's credential file",
            file=sys.stderr,
        )
        return 0
    if action == "rotate":
        credential = new_credential()
        done = store.rotate(name, credential_hash(credential))
        if done:
            print(credential)
    elif action == "revoke":
        done = store.revoke(name, time.time())
    else:
        done = store.set_enabled(name, action == "allow")
    if not done:
        print(f"edgecap-tokens: no device named {name}", file=sys.stderr)
        return 1
    print(f"device {name}: {action} done", file=sys.stderr)
    return 0


def config_path(given: Path | None) -> Path:
    if given is not None:
        return given
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    path = config_path(args.config)
    serving = args.command in ("serve", "check-config")
    try:
        loaded: LoadedService = load_service_config(path, need_keys=serving)
    except ServiceConfigError as exc:
        print(f"edgecap-tokens: {path}: {exc}", file=sys.stderr)
        return EX_CONFIG
    for warning in loaded.warnings:
        print(f"edgecap-tokens: warning: {warning}", file=sys.stderr)
    if args.command == "check-config":
        print(f"{path}: configuration OK (listen {loaded.config.listen})", file=sys.stderr)
        return 0
    store = Store(loaded.config.database)
    try:
        store.create_schema()
        if args.command == "serve":
            from edgecap.tokenservice.server import serve, setup_logging
            from edgecap.tokenservice.service import TokenService

            setup_logging(loaded.config.log_level)
            return serve(TokenService(loaded, store))
        if args.action == "list":
            return list_devices(store, args.json)
        return device_command(store, args.action, args.name)
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
