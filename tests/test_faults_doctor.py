"""Fault matrix, the doctor: with everything hanging at once (a microphone whose open blocks,
a token service that never answers, a broker frozen by SIGSTOP) `edgecap doctor` with its
default options still ends within 45 s, with a verdict, a cause and a fix on every row."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_proc import REPO, simulated_stack
from tests.harness import AlsaFifoSource, MosquittoBroker
from tests.strict_json import strict_loads

pytestmark = pytest.mark.faults

CREDENTIAL = "team-credential-faults-doctor"


async def test_the_doctor_ends_in_time_with_a_verdict_on_every_check_while_all_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mqtt_broker: MosquittoBroker
) -> None:
    source = AlsaFifoSource(tmp_path).prepare()  # no writer: the open blocks
    pid = mqtt_broker.pid
    assert pid is not None
    async with simulated_stack(
        tmp_path,
        device_id="doctor-hang",
        credential=CREDENTIAL,
        alsa=source,
        mqtt_port=mqtt_broker.port,
    ) as (_, tokens, config, stack_env):
        tokens.slow_delay_seconds = 3600.0
        tokens.mode = "slow"  # reads the request, never answers
        env = {**os.environ, **stack_env, "PYTHONPATH": str(REPO)}
        os.kill(pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "edgecap",
                "doctor",
                "--config",
                str(config),
                "--json",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 90)
            took = time.monotonic() - began
        finally:
            os.kill(pid, signal.SIGCONT)
            source.stop()
    assert took <= 45, took
    assert proc.returncode == 1, err.decode()
    report: dict[str, Any] = strict_loads(out)
    rows = {r["check"]: r for r in report["checks"]}
    assert set(rows) == {"config", "audio", "token", "streaming", "mqtt", "systemd"}
    assert rows["config"]["result"] == "pass"
    assert rows["audio"]["result"] == "fail"
    assert "'testcap' has not opened" in rows["audio"]["detail"]
    assert rows["token"]["result"] == "fail"
    assert "did not answer" in rows["token"]["detail"]
    assert rows["streaming"]["result"] == "skip"  # it needs a token
    assert rows["mqtt"]["result"] == "fail"
    for row in rows.values():
        assert row["detail"]
        if row["result"] == "fail":
            assert row["fix"], row
    print(f"doctor with everything hanging: {took:.1f} s")
