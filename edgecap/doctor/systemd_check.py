"""Check 7 (information): systemd: whether this process runs under systemd, the unit's
state and its watchdog. Not required: edgecap also runs without systemd."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from edgecap.doctor.context import DoctorContext
from edgecap.doctor.result import CheckResult

CHECK = "systemd"
PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "Result",
    "NRestarts",
    "WatchdogUSec",
    "StatusText",
    "ExecMainStatus",
)
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")  # exists only when PID 1 is systemd


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show`` output (``Key=value`` lines) as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _usec(value: str | None) -> str:
    """A microsecond count or a systemd time span, as seconds for humans."""
    if not value or value in ("0", "infinity"):
        return "off"
    if value.isdigit():
        return f"{int(value) / 1_000_000:g} s"
    return value


def process_note(environ: Mapping[str, str]) -> tuple[bool, str]:
    """Whether this process runs under systemd, and its watchdog, in words."""
    under = bool(environ.get("INVOCATION_ID") or environ.get("NOTIFY_SOCKET"))
    if not under:
        return False, "this command runs outside systemd (from a shell)"
    return True, f"this command runs under systemd (watchdog {_usec(environ.get('WATCHDOG_USEC'))})"


def judge_unit(unit: str, props: Mapping[str, str], note: str) -> CheckResult:
    """The verdict on ``systemctl show`` properties (no I/O)."""
    data = {k: props.get(k) for k in PROPERTIES}
    if props.get("LoadState") == "not-found":
        return CheckResult(
            CHECK, "warn", f"{note}; unit {unit} is not installed",
            "install it with `sudo scripts/install.sh` (docs/install.md)", required=False,
            data=data,
        )  # fmt: skip
    active, sub = props.get("ActiveState", "?"), props.get("SubState", "?")
    detail = (
        f"{note}; {unit}: {active} ({sub}), {props.get('UnitFileState', '?')} at boot, "
        f"watchdog {_usec(props.get('WatchdogUSec'))}, {props.get('NRestarts', '?')} restart(s)"
    )
    if props.get("StatusText"):
        detail += f", status: {props['StatusText']}"
    if active == "failed" or (active != "active" and props.get("Result", "success") != "success"):
        return CheckResult(
            CHECK, "fail", detail + f" (result: {props.get('Result')})",
            f"read why: `journalctl -u {unit} -n 50`; after fixing, "
            f"`sudo systemctl restart {unit}`", required=False, data=data,
        )  # fmt: skip
    if active != "active":
        return CheckResult(
            CHECK, "warn", detail, f"start it: `sudo systemctl enable --now {unit}`",
            required=False, data=data,
        )  # fmt: skip
    return CheckResult(CHECK, "pass", detail, required=False, data=data)


async def check_systemd(ctx: DoctorContext) -> CheckResult:
    unit = ctx.options.unit
    under, note = process_note(ctx.options.environ)
    base = {"under_systemd": under, "watchdog_usec": ctx.options.environ.get("WATCHDOG_USEC")}
    systemctl = shutil.which("systemctl")
    booted = await asyncio.to_thread(SYSTEMD_RUNTIME_DIR.is_dir)
    if not booted or systemctl is None:
        return CheckResult(
            CHECK,
            "skip",
            f"{note}; PID 1 is not systemd on this machine, so the {unit} unit cannot be inspected",
            required=False,
            data=base,
        )
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [systemctl, "show", unit, "--property=" + ",".join(PROPERTIES)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult(
            CHECK, "skip", f"{note}; `systemctl show {unit}` failed: {exc}", required=False,
            data=base,
        )  # fmt: skip
    if done.returncode != 0:
        return CheckResult(
            CHECK, "skip", f"{note}; `systemctl show {unit}`: {done.stderr.strip()}",
            required=False, data=base,
        )  # fmt: skip
    result = judge_unit(unit, parse_show(done.stdout), note)
    return CheckResult(
        result.check, result.result, result.detail, result.fix, required=False,
        data={**base, **result.data},
    )  # fmt: skip
