"""The billing guard in the real daemon (a subprocess, TZ=UTC) on real parts: speech through
ALSA (file plugin + FIFO), the v3 streaming and token-service simulators, a test-owned
mosquitto.

- isolated commands with the shipped settings: one session per command, opened after the
  speech started and closed (ForceEndpoint, Terminate) soon after it ended, billed at most
  1.5x the speech; every utterance arrives whole; the ledger bills what the simulator counted;
- a quiet room (silence, noise, hum) for two minutes opens nothing and asks for no token;
- the daily budget running out mid-speech closes the session after the turn being spoken,
  keeps sessions closed, and lets them open again after the reset time;
- the ledger survives a restart and a kill -9 (the killed session is recovered as billed).

The simulator's `session_duration_seconds` (rounded seconds from `Begin` to `Terminate`) is
what AssemblyAI would bill; its `closed_at - begin_at` is its own measure of the open time.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgecap.sim import StreamingSimulator, TokenServiceSimulator
from edgecap.sim.records import SessionRecord
from tests.daemon_proc import DaemonProcess, stack_config
from tests.harness import (
    AlsaFifoSource,
    Message,
    MosquittoBroker,
    MqttCollector,
    PlayHandle,
    SpeechFixture,
    read_retained,
)
from tests.harness.audio import room_noise
from tests.strict_json import strict_loads

pytestmark = pytest.mark.integration

CRED = "team-cred-billing-daemon-5e"
DEVICE = "billing"
LOCAL = "127.0.0.1"
TRANSCRIPT = f"edgecap/{DEVICE}/transcript"
STATUS = f"edgecap/{DEVICE}/status"
STATS = f"edgecap/{DEVICE}/stats"
IDLE = 2.0  # session.idle_close_seconds
CLOSE_SLACK = 2.5  # from the end of speech to the simulator seeing the close (shipped)
BUDGET_CLOSE_SLACK = 3.0  # from the end of the last turn's speech to a budget close


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def env_for(alsa: AlsaFifoSource) -> dict[str, str]:
    return {**alsa.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": CRED, "TZ": "UTC"}


def config_for(
    tmp_path: Path,
    alsa: AlsaFifoSource,
    broker: MosquittoBroker,
    sim: StreamingSimulator,
    tokens: TokenServiceSimulator,
    shipped: bool = False,
    **session: Any,
) -> Path:
    return stack_config(
        tmp_path,
        device_id=DEVICE,
        alsa_device=alsa.device,
        token_service_url=tokens.base_url,
        streaming_url=sim.url,
        mqtt_port=broker.port,
        gate="voice",
        sections={"session": session if shipped else {"idle_close_seconds": IDLE, **session}},
    )


@asynccontextmanager
async def running(config: Path, env: dict[str, str]) -> AsyncIterator[DaemonProcess]:
    daemon = await DaemonProcess(config, env).start()
    try:
        yield daemon
    finally:
        await daemon.ensure_stopped()


def is_state(state: str) -> Any:
    return lambda m: m.topic == STATUS and m.json()["state"] == state


def is_turn(m: Message) -> bool:
    return m.topic == TRANSCRIPT


def stats_where(pred: Any) -> Any:
    return lambda m: m.topic == STATS and "billing" in m.json() and pred(m.json())


def speech_span(f: SpeechFixture, h: PlayHandle) -> tuple[float, float]:
    """Wall times of the first and last voiced sample of a played fixture."""
    assert h.started_wall is not None
    assert h.finished_wall is not None
    start = h.started_wall + f.leading_silence_ms / 1000
    end = h.started_wall + (f.duration_ms - f.trailing_silence_ms) / 1000
    return start, end


def assert_whole(turn: dict[str, Any], f: SpeechFixture, h: PlayHandle) -> None:
    """The turn is the fixture, every word, timed within the fixture's speech."""
    assert turn["text"] == f.text
    assert [w["text"] for w in turn["words"]] == f.text.split()
    assert turn["words"][0]["text"] == f.first_word
    start, end = speech_span(f, h)
    # a turn cut short would end early: its words are spread over the audio it got
    assert start - 0.5 <= ts(turn["started_at"]) < ts(turn["ended_at"]) <= end + 0.5
    assert ts(turn["ended_at"]) >= end - 0.5


def ledger_rows(tmp_path: Path) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM sessions ORDER BY started_at").fetchall()
    finally:
        db.close()
    return {r["session_id"]: dict(r) for r in rows}


def closed_normally(s: SessionRecord) -> bool:
    return s.closed and s.terminate_received and s.close_code == 1000


def open_time(s: SessionRecord) -> float:
    assert s.begin_at is not None
    assert s.closed_at is not None
    return s.closed_at - s.begin_at


async def test_isolated_commands_cost_at_most_1_5x_their_speech_with_the_shipped_config(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    """Three voice commands 30 s apart, with the shipped session settings: one session per
    command, opened after the speech started and ended (ForceEndpoint if the turn is
    still open, then Terminate) soon after it ended; every word arrives; billed at most
    1.5x the speech; the ledger bills what the simulator counted."""
    fixtures = speech_fixtures[:3]
    async with (
        StreamingSimulator(script=[f.text for f in fixtures]) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        config = config_for(tmp_path, alsa_source, mqtt_broker, sim, tokens, shipped=True)
        with MqttCollector(LOCAL, mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            async with running(config, env_for(alsa_source)) as daemon:
                await sub.await_for(is_state("listening"), 20)
                assert sim.sessions == []
                handles: list[PlayHandle] = []
                for i, f in enumerate(fixtures):
                    alsa_source.play_silence(30.0 if i else 1.0)
                    handles.append(alsa_source.play_wav(f.path))
                tail = alsa_source.play_silence(4.0)
                total = sum(h.duration_s for h in handles) + 65
                await tail.await_done(total + 10)
                sim.wait_timeout = 15
                await sim.wait_until(
                    lambda: len(sim.sessions) >= 3 and all(s.closed for s in sim.sessions),
                    "three closed sessions",
                )
                stats = await sub.await_for(
                    stats_where(lambda p: p["billing"]["today"]["sessions"] >= 3), 10
                )
                turns = await sub.await_for(is_turn, 10, count=3)
                assert await daemon.stop(signal.SIGTERM) == 0
            turns = sub.on_topic(TRANSCRIPT)  # a late duplicate counts too
        assert len(sim.sessions) == 3, daemon.log
        payloads = [t.json() for t in turns]
        assert [p["text"] for p in payloads] == [f.text for f in fixtures], daemon.log

        rows = ledger_rows(tmp_path)
        speech = 0.0
        for s, f, h, t in zip(sim.sessions, fixtures, handles, turns, strict=True):
            start, end = speech_span(f, h)
            speech += end - start
            assert s.begin_at is not None
            assert s.closed_at is not None
            # opened by the command, promptly; closed by Terminate soon after it ended
            assert start <= s.begin_at <= start + 1.5, (s.begin_at - start, daemon.log)
            assert closed_normally(s), daemon.log
            assert end <= s.closed_at <= end + CLOSE_SLACK, (s.closed_at - end, daemon.log)
            p = t.json()
            assert p["session_id"] == s.session_id
            assert_whole(p, f, h)
            row = rows[str(s.session_id)]
            assert row["source"] == "server"
            assert row["billed_seconds"] == s.session_duration_seconds
            assert abs(open_time(s) - row["billed_seconds"]) <= 1.0
            print(  # figures for the issue note (pytest -s)
                f"command: speech {end - start:.2f} s, opened {s.begin_at - start:+.2f} s "
                f"after its start, closed {s.closed_at - end:+.2f} s after its end, "
                f"open {open_time(s):.2f} s, billed {row['billed_seconds']:g} s, "
                f"turn on MQTT {t.received_at - end:+.2f} s after the end of speech"
            )
        billed = sum(s.session_duration_seconds or 0 for s in sim.sessions)
        print(f"commands: billed {billed} s for {speech:.2f} s of speech: {billed / speech:.2f}x")
        assert billed <= 1.5 * speech, (billed, speech, daemon.log)
        today = stats[-1].json()["billing"]["today"]
        assert today["sessions"] == 3
        assert today["billed_seconds"] == billed
        assert abs(sum(open_time(s) for s in sim.sessions) - billed) <= 3 * 1.0
        # the stats retained last (on the clean stop) still say so
        retained = read_retained(LOCAL, mqtt_broker.port, STATS, 5)
        assert retained is not None
        last = strict_loads(retained)["billing"]["today"]
        assert (last["sessions"], last["billed_seconds"]) == (3, billed)


async def test_quiet_room_opens_no_session(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    f = speech_fixtures[0]
    async with (
        StreamingSimulator(script=[f.text]) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        config = config_for(tmp_path, alsa_source, mqtt_broker, sim, tokens)
        with MqttCollector(LOCAL, mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            async with running(config, env_for(alsa_source)) as daemon:
                await sub.await_for(is_state("listening"), 20)
                # two minutes of a quiet room: digital silence, noise, noise with a mains hum
                alsa_source.play_silence(10.0)
                alsa_source.play_pcm(room_noise(50.0, noise_dbfs=-50.0, seed=1), "noise")
                quiet = alsa_source.play_pcm(
                    room_noise(50.0, noise_dbfs=-50.0, hum_dbfs=-30.0, hum_hz=100.0, seed=2),
                    "noise + 100 Hz hum",
                )
                await quiet.await_done(130)
                assert daemon.proc is not None
                assert daemon.proc.returncode is None
                assert sim.sessions == []
                assert sim.handshake_attempts == 0
                assert tokens.requests == []
                assert {m.json()["state"] for m in sub.on_topic(STATUS)} <= {
                    "starting",
                    "listening",
                }
                retained = read_retained(LOCAL, mqtt_broker.port, STATUS, 5)
                assert retained is not None
                assert strict_loads(retained)["state"] == "listening"
                # healthy all along: the first words spoken open a session and arrive (after
                # a second of digital silence: the simulator would take the -30 dBFS hum in
                # the pre-roll for speech and stretch the words over it)
                alsa_source.play_silence(1.0)
                h = alsa_source.play_wav(f.path)
                alsa_source.play_silence(2.0)
                turn = (await sub.await_for(is_turn, h.duration_s + 15))[0].json()
                assert await daemon.stop(signal.SIGTERM) == 0
        assert len(sim.sessions) == 1
        assert turn["session_id"] == sim.sessions[0].session_id
        assert_whole(turn, f, h)
        assert len(tokens.requests) <= 2  # the session's token, perhaps a spare
        assert "Traceback" not in daemon.log


def reset_time_ahead(seconds: float) -> datetime:
    """A wall time `seconds` from now (UTC, whole seconds) for session.budget_reset_time."""
    return datetime.fromtimestamp(time.time() + seconds, UTC).replace(microsecond=0)


async def test_budget_runs_out_mid_speech_and_comes_back_after_the_reset(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    # ~9 s of speech in sentences 3 s apart (a pause the detector hears: a quiet point),
    # much longer than the budget
    talk = speech_fixtures[:4]
    later, spare = speech_fixtures[4], speech_fixtures[5]
    # the simulator names each stretch of speech it hears by the next line of its script:
    # `later` is never heard (no session), and after the reset the next unspoken line is said
    script = [*talk, spare]
    budget_s = 6.0
    reset = reset_time_ahead(35)
    async with (
        StreamingSimulator(script=[f.text for f in script]) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        config = config_for(
            tmp_path,
            alsa_source,
            mqtt_broker,
            sim,
            tokens,
            daily_budget_minutes=budget_s / 60,
            budget_reset_time=reset.strftime("%H:%M:%S"),
            idle_close_seconds=6.0,  # the pauses between sentences do not end the session
        )
        with MqttCollector(LOCAL, mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            async with running(config, env_for(alsa_source)) as daemon:
                await sub.await_for(is_state("listening"), 20)
                handles: list[PlayHandle] = []
                for f in talk:
                    handles.append(alsa_source.play_wav(f.path))
                    alsa_source.play_silence(3.0)
                await daemon.wait_log("daily budget of 0.1 min used up")
                ran_out = time.time()
                exhausted = (await sub.await_for(is_state("budget_exhausted"), 5))[0].json()
                assert "budget" in exhausted["detail"]
                assert exhausted["budget_resets_at"] is not None
                # the configured reset time (HH:MM:SS, local = UTC here), today
                assert ts(exhausted["budget_resets_at"]) == reset.timestamp(), (
                    reset.isoformat(),
                    exhausted,
                )
                session = await sim.wait_for_session(0)
                await sim.wait_closed(session)
                # more speech while the budget is used up opens nothing
                h_later = alsa_source.play_wav(later.path)
                quiet = alsa_source.play_silence(2.0)
                await quiet.await_done(h_later.duration_s + 20)
                assert len(sim.sessions) == 1
                assert len(tokens.requests) <= 2
                retained = read_retained(LOCAL, mqtt_broker.port, STATUS, 5)
                assert retained is not None
                assert strict_loads(retained)["state"] == "budget_exhausted"
                spoken = sub.on_topic(TRANSCRIPT)
                after_reset = script[len(spoken)]
                # the reset: sessions open again for speech
                sub.clear()
                wait = reset.timestamp() - time.time()
                back = (await sub.await_for(is_state("listening"), wait + 10))[0].json()
                back_at = time.time()
                h_again = alsa_source.play_wav(after_reset.path)
                alsa_source.play_silence(1.0)
                again = (await sub.await_for(is_turn, h_again.duration_s + 15))[0].json()
                assert await daemon.stop(signal.SIGTERM) == 0

        # the budget ran out while speaking; the session closed at the next quiet point
        assert session.begin_at is not None
        assert budget_s - 0.5 <= ran_out - session.begin_at <= budget_s + 2.0
        assert closed_normally(session), daemon.log
        payloads = [m.json() for m in spoken]
        n = len(payloads)
        assert n >= 1
        assert [p["text"] for p in payloads] == [f.text for f in talk[:n]], daemon.log
        for p, f, h in zip(payloads, talk, handles, strict=False):
            assert_whole(p, f, h)  # the turn being spoken when the budget ran out too
        # the last turn published is the one being spoken when the budget ran out (or, if it
        # ran out in a pause, the one before); the next one was never sent
        speaking = [speech_span(f, h) for f, h in zip(talk, handles, strict=True)]
        assert speaking[n - 1][0] <= ran_out + 0.5
        if n < len(talk):
            assert ran_out < speaking[n][0] + 0.5
            assert session.closed_at is not None
            assert session.closed_at <= speaking[n][0] + 0.5, daemon.log
        last_end = speaking[n - 1][1]
        assert session.closed_at is not None
        assert last_end <= session.closed_at <= last_end + BUDGET_CLOSE_SLACK
        print(
            f"budget: ran out {ran_out - session.begin_at:.2f} s after Begin, closed "
            f"{session.closed_at - last_end:.2f} s after the last turn's speech ended; "
            f"{n} of {len(talk)} turns; billed {session.session_duration_seconds} s"
        )
        # after the reset: a new session, the turn whole
        assert back_at >= reset.timestamp()
        assert back["budget_resets_at"] is None
        assert len(sim.sessions) == 2
        assert closed_normally(sim.sessions[1])
        assert again["session_id"] == sim.sessions[1].session_id
        assert_whole(again, after_reset, h_again)


RECOVERED = re.compile(
    r"WARNING .*billing ledger: session (\S+) was still open when edgecap stopped .*"
    r"counting ([0-9.]+) billed seconds"
)


async def test_ledger_survives_restart_and_kill(
    tmp_path: Path,
    mqtt_broker: MosquittoBroker,
    alsa_source: AlsaFifoSource,
    speech_fixtures: list[SpeechFixture],
) -> None:
    f1, f2, f3 = speech_fixtures[:3]
    budget_s = 60.0
    async with (
        StreamingSimulator(script=[f1.text, f2.text, f3.text]) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        config = config_for(
            tmp_path, alsa_source, mqtt_broker, sim, tokens, daily_budget_minutes=budget_s / 60
        )
        # after the kill the microphone restarts empty (the killed reader's unplayed audio
        # would otherwise reach the restarted daemon)
        fresh_mic = AlsaFifoSource(tmp_path / "after-kill").start()
        with MqttCollector(LOCAL, mqtt_broker.port, [f"edgecap/{DEVICE}/#"]) as sub:
            try:
                # 1. a session with speech, then a clean stop and a restart
                async with running(config, env_for(alsa_source)) as daemon:
                    await sub.await_for(is_state("listening"), 20)
                    alsa_source.play_wav(f1.path)
                    alsa_source.play_silence(1.0)
                    first = await sim.wait_for_session(0)
                    await sim.wait_closed(first)
                    stats = await sub.await_for(
                        stats_where(lambda p: p["billing"]["today"]["sessions"] == 1), 10
                    )
                    assert await daemon.stop(signal.SIGTERM) == 0
                before = stats[0].json()["billing"]
                assert closed_normally(first)
                assert before["today"]["billed_seconds"] == first.session_duration_seconds
                sub.clear()
                async with running(config, env_for(alsa_source)) as daemon:
                    after = (await sub.await_for(stats_where(lambda p: True), 15))[0].json()
                    await sub.await_for(is_state("listening"), 20)
                    # 2. a session open mid-speech, then kill -9
                    handle = alsa_source.play_wav(f2.path)
                    alsa_source.play_wav(f3.path)
                    killed = await sim.wait_for_begin(1)
                    await sim.wait_until(lambda: killed.audio_ms >= 1500, "speech streaming")
                    assert not handle.done.is_set()  # still speaking
                    assert await daemon.stop(signal.SIGKILL) == -signal.SIGKILL
                await sim.wait_closed(killed)
                assert killed.close_code == 1006  # no Terminate: the server bills on
                sub.clear()
                async with running(config, env_for(fresh_mic)) as daemon:
                    recovered = (await sub.await_for(stats_where(lambda p: True), 15))[0].json()
                    line = await daemon.wait_log("was still open when edgecap stopped")
                    await sub.await_for(is_state("listening"), 20)
                    assert await daemon.stop(signal.SIGTERM) == 0
            finally:
                fresh_mic.stop()
        # a restart keeps today's totals (and the month's)
        assert after["billing"]["today"] == before["today"]
        assert after["billing"]["month"] == before["month"]
        assert after["started_at"] != stats[0].json()["started_at"]
        # the killed session: recovered as billed, at least what the simulator measured
        m = RECOVERED.search(line)
        assert m is not None, line
        assert m[1] == killed.session_id
        estimate = float(m[2])
        measured = open_time(killed)
        assert estimate >= measured
        row = ledger_rows(tmp_path)[str(killed.session_id)]
        assert row["source"] == "recovered"
        assert abs(row["billed_seconds"] - estimate) <= 0.05
        today = recovered["billing"]["today"]
        assert today["sessions"] == 2
        total = before["today"]["billed_seconds"] + row["billed_seconds"]
        assert abs(today["billed_seconds"] - total) <= 0.05
        assert recovered["billing"]["budget_seconds"] == budget_s
        assert abs(recovered["billing"]["budget_left_seconds"] - (budget_s - total)) <= 0.05
        print(
            f"restart: today {before['today']} kept; killed after {measured:.2f} s open "
            f"(simulator), recovered as {estimate:g} s billed; today {today}"
        )
