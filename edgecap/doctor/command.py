"""``edgecap doctor``: run the checks, print the table (or JSON), exit 0 only if every
required check passed."""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
from collections.abc import Mapping

from edgecap.doctor.context import DEFAULT_RECORD_SECONDS, DoctorOptions
from edgecap.doctor.loading import load_doctor_config
from edgecap.doctor.render import render_header, render_json, render_row, summary_line
from edgecap.doctor.result import CheckResult, Report
from edgecap.doctor.runner import run_doctor
from edgecap.runtime import DaemonThreadExecutor
from edgecap.systemd.journal import setup_logging


def _print(line: str, *, stream: str = "stdout") -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.write(line if line.endswith("\n") else line + "\n")
    out.flush()


def doctor_command(
    config_path: str | None,
    *,
    as_json: bool = False,
    listen_seconds: float | None = None,
    timeout: float | None = None,
    record_seconds: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run every check; returns 0 when every required check passed, else 1."""
    cfg = load_doctor_config(config_path, environ)
    setup_logging("warning", cfg.secrets.values, target="stderr")  # secrets masked
    width = shutil.get_terminal_size((100, 24)).columns
    live = "stderr" if as_json else "stdout"
    options = DoctorOptions(
        timeout=timeout,
        listen_seconds=listen_seconds,
        on_line=lambda line: _print(f"  listen: {line}", stream=live),
        record_seconds=DEFAULT_RECORD_SECONDS if record_seconds is None else record_seconds,
    )

    def show(result: CheckResult) -> None:
        if not as_json:
            _print(render_row(result, width))

    if not as_json:
        _print(render_header(width))

    async def main() -> Report:
        # a check cut by its budget may leave a blocking call behind (a name lookup, the
        # MQTT probe): daemon threads, so the doctor still exits at once
        asyncio.get_running_loop().set_default_executor(DaemonThreadExecutor())
        return await run_doctor(cfg, options, on_result=show)

    report = asyncio.run(main())
    if as_json:
        _print(render_json(report))
    else:
        _print("\n" + "\n".join(textwrap.wrap(summary_line(report), max(width, 72))))
    return report.exit_status
