"""sd_notify on a test-owned NOTIFY_SOCKET: READY, STATUS, watchdog pings while audio flows
or a capture problem is being handled (a stalled microphone is restarted and reported, not
left to the watchdog), STOPPING on SIGTERM. The daemon runs as a real process with real ALSA
capture."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import pytest

from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, stack_config
from tests.harness import AlsaFifoSource, MosquittoBroker
from tests.notify_socket import NotifySocket

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential-notify-5d2e"
WATCHDOG_USEC = 1_000_000  # pings every 0.5 s; a stall is declared after 1 s


async def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, mqtt_broker: MosquittoBroker, alsa_source: AlsaFifoSource
) -> None:
    async with (
        StreamingSimulator() as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
        NotifySocket(tmp_path / "notify.sock") as notify,
    ):
        config = stack_config(
            tmp_path,
            device_id="notify-dev",
            alsa_device=alsa_source.device,
            token_service_url=tokens.base_url,
            streaming_url=sim.url,
            mqtt_port=mqtt_broker.port,
        )
        env = {
            **alsa_source.env,
            "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL,
            "NOTIFY_SOCKET": str(notify.path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        }
        daemon = await DaemonProcess(config, env).start()
        try:
            async with asyncio.timeout(15):
                await notify.wait_for(lambda: bool(notify.with_field("READY=1")))
                await notify.wait_for(
                    lambda: any("STATUS=streaming" in m for _, m in notify.messages)
                )
                await notify.wait_for(lambda: len(notify.with_field("WATCHDOG=1")) >= 4)
            pings = [t for t, _ in notify.with_field("WATCHDOG=1")]
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert all(0.3 < g < 1.0 for g in gaps), gaps  # about half of WATCHDOG_USEC

            # the microphone stalls (reads block): the daemon restarts capture itself and
            # says so; that is a reported state, so the pings go on (a restart of the whole
            # service would not help). Only a daemon that stops handling it goes silent.
            alsa_source.pause()
            paused_at = time.monotonic()
            async with asyncio.timeout(10):
                line = await daemon.wait_log("stopped delivering audio")
            assert "audio device 'testcap' stopped delivering audio" in line
            async with asyncio.timeout(10):
                await notify.wait_for(
                    lambda: any(
                        "STATUS=audio_unavailable" in m for t, m in notify.messages if t > paused_at
                    )
                )
            count = len(notify.with_field("WATCHDOG=1"))
            async with asyncio.timeout(5):
                await notify.wait_for(lambda: len(notify.with_field("WATCHDOG=1")) >= count + 3)
            pings = [t for t, _ in notify.with_field("WATCHDOG=1") if t > paused_at]
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert all(g < 1.0 for g in gaps), gaps  # never withheld
            assert "withholding the watchdog ping" not in daemon.log
            alsa_source.resume()
            async with asyncio.timeout(15):
                await notify.wait_for(
                    lambda: (
                        notify.messages[-1][1].startswith("STATUS=streaming")
                        or any("STATUS=streaming" in m for t, m in notify.messages if t > paused_at)
                    )
                )

            code = await daemon.stop(signal.SIGTERM)
        finally:
            await daemon.ensure_stopped()
        assert code == 0, daemon.log
        assert len(notify.with_field("READY=1")) == 1
        ready_at = notify.with_field("READY=1")[0][0]
        assert all(t > ready_at for t, _ in notify.with_field("WATCHDOG=1"))
        assert notify.with_field("STOPPING=1")
        statuses = [m for _, m in notify.with_field("STATUS=")]
        assert any("turns today" in s and "billed min" in s for s in statuses)
