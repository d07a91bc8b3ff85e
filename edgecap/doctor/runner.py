"""Runs every check in order and never stops early: a failed check is reported, the next
one runs (skipping, with the reason, only what truly depends on the failure)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from edgecap.doctor.audio_check import check_audio
from edgecap.doctor.config_check import check_config
from edgecap.doctor.context import DoctorContext, DoctorOptions
from edgecap.doctor.listen import check_listen
from edgecap.doctor.loading import DoctorConfig
from edgecap.doctor.mqtt_check import check_mqtt
from edgecap.doctor.result import CheckResult, Report
from edgecap.doctor.streaming_check import check_streaming
from edgecap.doctor.systemd_check import check_systemd
from edgecap.doctor.token_check import check_token

log = logging.getLogger(__name__)

Check = Callable[[DoctorContext], Awaitable[CheckResult]]


def checks_for(options: DoctorOptions) -> list[tuple[str, Check]]:
    """The checks, in the order they run."""
    checks: list[tuple[str, Check]] = [
        ("config", check_config),
        ("audio", check_audio),
        ("token", check_token),
        ("streaming", check_streaming),
    ]
    if options.listen_seconds:
        checks.append(("listen", check_listen))
    checks += [("mqtt", check_mqtt), ("systemd", check_systemd)]
    return checks


async def run_doctor(
    cfg: DoctorConfig,
    options: DoctorOptions | None = None,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
    checks: Sequence[tuple[str, Check]] | None = None,
) -> Report:
    """Run every check; ``on_result`` sees each result as soon as it is known."""
    opts = options or DoctorOptions()
    ctx = DoctorContext(cfg, opts)
    results: list[CheckResult] = []
    try:
        for name, check in checks if checks is not None else checks_for(opts):
            try:
                result = await check(ctx)
            except Exception as exc:  # a bug in one check must not hide the others
                log.debug("check %s crashed", name, exc_info=True)
                result = CheckResult(
                    name,
                    "fail",
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "this is a bug in edgecap doctor; please report it with this output",
                )
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if ctx.tokens is not None:
            await ctx.tokens.aclose()
    return Report.of(results)
