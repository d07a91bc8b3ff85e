"""Logging under systemd: entries with structured fields in a real journald (test-owned,
as in the test recipes), readable by `journalctl -o json`; no secret in any log."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecap.sim.streaming import FaultPlan, StreamingSimulator
from edgecap.sim.tokens import TokenServiceSimulator
from tests.daemon_proc import DaemonProcess, stack_config
from tests.harness import AlsaFifoSource, MosquittoBroker

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential-journal-4b7d01"
JOURNALD = Path("/lib/systemd/systemd-journald")
SOCKET = Path("/run/systemd/journal/socket")


@pytest.fixture
def journald() -> Iterator[None]:
    """A journald of the test's own, stopped and cleaned up afterwards."""
    if SOCKET.exists():
        yield  # a journald already runs on this machine: use it
        return
    if os.geteuid() != 0 or not JOURNALD.exists() or shutil.which("journalctl") is None:
        pytest.skip("needs root and systemd-journald to run a test-owned journald")
    created = [
        p for p in (Path("/run/systemd/journal"), Path("/run/log/journal")) if not p.exists()
    ]
    proc = subprocess.Popen([str(JOURNALD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not SOCKET.exists():  # waiting for journald to create its socket
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.skip("systemd-journald did not start here")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        for path in created:
            shutil.rmtree(path, ignore_errors=True)


def journal_entries(pid: int) -> list[dict[str, object]]:
    out = subprocess.run(
        ["journalctl", f"_PID={pid}", "-o", "json", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_journal_fields_and_no_secret_in_logs(
    tmp_path: Path, journald: None, mqtt_broker: MosquittoBroker, alsa_source: AlsaFifoSource
) -> None:
    async with (
        StreamingSimulator() as sim,
        TokenServiceSimulator(sim, credential=CREDENTIAL) as tokens,
    ):
        # the first session is dropped by the server, so an error class is logged too
        sim.schedule_fault(FaultPlan.close(1011, after_seconds=0.5))
        config = stack_config(
            tmp_path,
            device_id="journal-dev",
            alsa_device=alsa_source.device,
            token_service_url=tokens.base_url,
            streaming_url=sim.url,
            mqtt_port=mqtt_broker.port,
            sections={"logging": {"target": "journal", "level": "debug"}},
        )
        env = {**alsa_source.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CREDENTIAL}
        daemon = await DaemonProcess(config, env).start()
        try:
            await sim.wait_for_session(1)
            await sim.wait_until(lambda: sim.sessions[1].begin is not None, "second Begin")
            assert daemon.proc is not None
            pid = daemon.proc.pid
            code = await daemon.stop(signal.SIGTERM)
        finally:
            await daemon.ensure_stopped()
        assert code == 0
        entries: list[dict[str, object]] = []
        async with asyncio.timeout(20):
            while not any(e.get("EDGECAP_STATE") == "stopping" for e in entries):
                entries = await asyncio.to_thread(journal_entries, pid)  # journald flushes lazily
        states = [e for e in entries if "EDGECAP_STATE" in e]
        assert {e["EDGECAP_STATE"] for e in states} >= {"streaming", "reconnecting", "stopping"}
        streaming = next(e for e in states if e["EDGECAP_STATE"] == "streaming")
        assert streaming["SESSION_ID"] == sim.sessions[0].session_id
        assert any(e.get("ERROR_CLASS") == "transient" for e in entries)
        assert all(e.get("SYSLOG_IDENTIFIER") == "edgecap" for e in entries)
        assert {"PRIORITY", "MESSAGE", "CODE_FUNC"} <= set(entries[0])

        # secrets: the credential and every token minted must appear in no log at all
        journal_text = json.dumps(entries)
        secrets = [CREDENTIAL, *sim.minted_tokens]
        assert sim.minted_tokens
        for secret in secrets:
            assert secret not in journal_text
            assert secret not in daemon.log
