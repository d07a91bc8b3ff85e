"""Runs every check in order and never stops early: a failed check is reported, the next
one runs (skipping, with the reason, only what truly depends on the failure)."""

from __future__ import annotations

import asyncio
import contextlib
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
from edgecap.doctor.sync_check import check_sync
from edgecap.doctor.systemd_check import check_systemd
from edgecap.doctor.token_check import check_token
from edgecap.runtime import Deadline

log = logging.getLogger(__name__)

Check = Callable[[DoctorContext], Awaitable[CheckResult]]


def checks_for(options: DoctorOptions, sync: bool = False) -> list[tuple[str, Check]]:
    """The checks, in the order they run (`sync`: the Sync API check in place of the token
    and streaming checks)."""
    checks: list[tuple[str, Check]] = [("config", check_config), ("audio", check_audio)]
    if sync:
        checks.append(("sync", check_sync))
    else:
        checks += [("token", check_token), ("streaming", check_streaming)]
    if options.listen_seconds:
        checks.append(("listen", check_listen))
    checks += [("mqtt", check_mqtt), ("systemd", check_systemd)]
    return checks


TOTAL_SECONDS = 45.0
"""The whole doctor (without --listen) ends within this, whatever hangs."""
BUDGET_SECONDS = {
    "config": 5.0,
    "audio": 12.0,
    "token": 12.0,
    "streaming": 16.0,
    "sync": 16.0,
    "mqtt": 12.0,
    "systemd": 6.0,
}
LISTEN_EXTRA_SECONDS = 20.0  # --listen: its seconds, plus connecting and Termination
LATER_RESERVE_SECONDS = 1.0  # kept for each check still to come
TOO_SLOW_FIX = {
    "audio": "the device's open or its reads hang: see `edgecap devices`, and whether "
    "another program (or the edgecap service) holds it",
    "token": "the token service or the name lookup hangs: check auth.token_service_url, DNS "
    "and the network",
    "streaming": "the streaming server or the name lookup hangs: check streaming.url, DNS and "
    "the network",
    "sync": "the Sync API (or the token service in front of it) or the name lookup hangs: "
    "check sync.url / auth.token_service_url, DNS and the network",
    "mqtt": "the broker or the name lookup hangs: check mqtt.host, DNS and the network",
    "systemd": "systemctl does not answer: check `systemctl status` by hand",
}


def budget_for(name: str, deadline: Deadline, later: int, listen_seconds: float) -> float:
    """The time a check may take: its own budget, less what the checks after it need."""
    own = BUDGET_SECONDS.get(name, 10.0)
    if name == "listen":
        own = listen_seconds + LISTEN_EXTRA_SECONDS
    return min(own, deadline.left(later * LATER_RESERVE_SECONDS, at_least=0.5))


def too_slow(name: str, seconds: float) -> CheckResult:
    return CheckResult(
        name,
        "fail",
        f"did not finish within {seconds:.1f} s (the doctor ends within "
        f"{TOTAL_SECONDS:.0f} s whatever hangs)",
        TOO_SLOW_FIX.get(name, "run the doctor again; if it repeats, report it"),
    )


async def run_doctor(
    cfg: DoctorConfig,
    options: DoctorOptions | None = None,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
    checks: Sequence[tuple[str, Check]] | None = None,
    total_seconds: float = TOTAL_SECONDS,
) -> Report:
    """Run every check; ``on_result`` sees each result as soon as it is known. Each check
    has a time budget and the whole run ends within `total_seconds` (plus --listen)."""
    opts = options or DoctorOptions()
    ctx = DoctorContext(cfg, opts)
    results: list[CheckResult] = []
    listen = opts.listen_seconds or 0.0
    deadline = Deadline(total_seconds + (listen + LISTEN_EXTRA_SECONDS if listen else 0.0))
    todo = list(checks if checks is not None else checks_for(opts, cfg.sync_provider))
    try:
        for index, (name, check) in enumerate(todo):
            budget = budget_for(name, deadline, len(todo) - index - 1, listen)
            try:
                result = await asyncio.wait_for(check(ctx), budget)
            except TimeoutError:
                result = too_slow(name, budget)
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.tokens.aclose(), 1.0)
    return Report.of(results)
