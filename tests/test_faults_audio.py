"""Fault matrix, the microphone: a capture device whose open blocks (an alsa-lib `file` PCM
whose FIFO has no writer yet: open(2) waits, exactly like a busy `hw:` device or a sound
server that does not answer) used to freeze the whole daemon. Now, with the real daemon,
real ALSA, mosquitto and the simulators: MQTT online and a status naming the device, READY,
a working SIGHUP, `edgecap doctor` ending with a failing audio row, transcription as soon as
the device delivers, and an exit 0 within 5 s of SIGTERM/SIGINT in any of these states."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_proc import REPO, DaemonProcess, simulated_stack
from tests.harness import AlsaFifoSource, MosquittoBroker, MqttCollector, SpeechFixture
from tests.notify_socket import NotifySocket
from tests.strict_json import strict_loads

pytestmark = pytest.mark.faults

CREDENTIAL = "team-credential-faults-audio"
DEVICE_ID = "hung-mic"


async def run_doctor(config: Path, env: dict[str, str]) -> tuple[int, dict[str, Any], float]:
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        "doctor",
        "--config",
        str(config),
        "--json",
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, strict_loads(out), time.monotonic() - began


@pytest.fixture
def hung_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlsaFifoSource:
    """The capture device, defined, with a FIFO nobody writes yet: its open blocks."""
    source = AlsaFifoSource(tmp_path).prepare()
    for key, value in source.env.items():
        monkeypatch.setenv(key, value)
    yield source
    source.stop()


def status_of(sub: MqttCollector) -> list[dict[str, Any]]:
    return [strict_loads(m.payload) for m in sub.on_topic(f"edgecap/{DEVICE_ID}/status")]


async def test_a_microphone_whose_open_hangs_never_freezes_the_daemon(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    hung_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixture = speech_fixtures[0]
    async with (
        simulated_stack(
            tmp_path,
            device_id=DEVICE_ID,
            credential=CREDENTIAL,
            alsa=hung_source,
            mqtt_port=mqtt_broker.port,
            script=[fixture.text],
        ) as (sim, _, config, env),
        NotifySocket(tmp_path / "notify.sock") as notify,
    ):
        env["NOTIFY_SOCKET"] = str(notify.path)
        with MqttCollector("127.0.0.1", mqtt_broker.port, [f"edgecap/{DEVICE_ID}/#"]) as sub:
            began = time.monotonic()
            daemon = await DaemonProcess(config, env).start()
            try:
                # MQTT online and a status that names the device and the cause, within 15 s
                await sub.await_for(
                    lambda m: m.topic.endswith("/availability") and m.payload == b"online", 15
                )
                [*_, unavailable] = await sub.await_for(
                    lambda m: (
                        m.topic.endswith("/status")
                        and strict_loads(m.payload)["state"] == "audio_unavailable"
                    ),
                    15,
                )
                reported_after = time.monotonic() - began
                assert reported_after < 15
                status = strict_loads(unavailable.payload)
                assert status["detail"].startswith(
                    "audio device 'testcap' has not opened after 5 s"
                ), status
                assert "its ALSA plugin is waiting" in status["detail"]
                async with asyncio.timeout(5):
                    await notify.wait_for(lambda: bool(notify.with_field("READY=1")))

                # SIGHUP is handled while the device hangs
                mark = len(daemon.stderr_lines)
                assert daemon.proc is not None
                daemon.proc.send_signal(signal.SIGHUP)
                await asyncio.wait_for(daemon.wait_log("reload: config", after=mark), 5)

                assert sim.sessions == []  # nothing billed while there is no audio

                # the doctor ends, with a failing audio row that names the device and says
                # the running service holds it
                code, report, took = await run_doctor(config, env)
                assert code == 1
                audio = next(r for r in report["checks"] if r["check"] == "audio")
                assert audio["result"] == "fail"
                assert "'testcap' has not opened" in audio["detail"]
                assert "the edgecap service is running" in audio["fix"]
                assert took < 45
                probes = len(sim.sessions)  # the doctor's own streaming check

                # the device starts delivering: transcription starts by itself
                hung_source.start()
                writer_at = time.monotonic()
                await asyncio.wait_for(daemon.wait_log("opened"), 15)
                opened_after = time.monotonic() - writer_at
                await sim.wait_for_session(probes)
                hung_source.play_silence(0.5)
                hung_source.play_wav(fixture.path)
                hung_source.play_silence(1.5)
                turns = await sub.await_for(lambda m: m.topic.endswith("/transcript"), 20)
                assert strict_loads(turns[0].payload)["text"] == fixture.text
                assert status_of(sub)[-1]["state"] == "streaming"
                print(
                    f"hung open: status after {reported_after:.1f} s, doctor {took:.1f} s, "
                    f"audio {opened_after:.2f} s after the device delivered"
                )

                stopped = time.monotonic()
                code = await daemon.stop(signal.SIGTERM)
                assert code == 0, daemon.log
                assert time.monotonic() - stopped < 5
            finally:
                await daemon.ensure_stopped()
        # READY=1 at start (with the state that says why there is no audio), and once more
        # after the reload (RELOADING=1 ... READY=1, as systemd expects)
        ready = [m for _, m in notify.with_field("READY=1")]
        assert len(ready) == 2
        assert "STATUS=audio_unavailable" in ready[0]
        assert len(notify.with_field("RELOADING=1")) == 1
        assert "Traceback" not in daemon.log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_daemon_exits_within_5_s_while_the_open_hangs(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    hung_source: AlsaFifoSource,
    sig: signal.Signals,
) -> None:
    async with simulated_stack(
        tmp_path,
        device_id=DEVICE_ID,
        credential=CREDENTIAL,
        alsa=hung_source,
        mqtt_port=mqtt_broker.port,
    ) as (_, _, config, env):
        daemon = await DaemonProcess(config, env).start()
        try:
            await asyncio.wait_for(daemon.wait_log("opening audio device testcap"), 10)
            assert daemon.proc is not None
            children = child_pids(daemon.proc.pid)
            assert children, "the capture child is running"
            stopped = time.monotonic()
            code = await daemon.stop(sig)
            took = time.monotonic() - stopped
        finally:
            await daemon.ensure_stopped()
        assert code == 0, daemon.log
        assert took < 5, daemon.log
        print(f"{sig.name} while the open hangs: exit 0 after {took:.2f} s")
        for pid in children:  # no capture process is left behind
            assert gone(pid)


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by the exiting daemon counts as gone)."""
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_only_the_capture_child_loads_alsa_lib(
    tmp_path: Path, mqtt_broker: MosquittoBroker, alsa_source: AlsaFifoSource
) -> None:
    """Every ALSA call happens in the capture child: the daemon's own process never even
    maps libasound, so no ALSA call can hold its GIL."""
    async with simulated_stack(
        tmp_path,
        device_id=DEVICE_ID,
        credential=CREDENTIAL,
        alsa=alsa_source,
        mqtt_port=mqtt_broker.port,
    ) as (sim, _, config, env):
        daemon = await DaemonProcess(config, env).start()
        try:
            await sim.wait_for_session(0)  # audio flows: the device is open
            assert daemon.proc is not None
            children = child_pids(daemon.proc.pid)
            assert not maps_libasound(daemon.proc.pid)
            assert [pid for pid in children if maps_libasound(pid)], children
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.ensure_stopped()


def maps_libasound(pid: int) -> bool:
    return "libasound" in Path(f"/proc/{pid}/maps").read_text()
