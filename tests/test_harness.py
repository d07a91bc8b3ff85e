"""The test harness itself: real pyalsaaudio capture through the FIFO device, a real
mosquitto broker, and the MQTT observers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import alsaaudio
import pytest

from tests.harness import (
    AlsaFifoSource,
    Message,
    MosquittoBroker,
    MqttCollector,
    SpeechFixture,
    mosquitto_pub,
    mosquitto_sub_one,
    publish,
    read_retained,
    read_wav_pcm,
    tone,
)

pytestmark = pytest.mark.integration

PERIOD_BYTES = 1600


def open_capture(device: str = "testcap") -> Any:
    return alsaaudio.PCM(
        type=alsaaudio.PCM_CAPTURE,
        rate=16000,
        channels=1,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=800,
        periods=4,
        device=device,
    )


class CaptureThread:
    """Reads the capture device continuously in a thread, like the daemon will."""

    def __init__(self, device: str = "testcap") -> None:
        self.pcm = open_capture(device)
        self._cond = threading.Condition()
        self._data = bytearray()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            _, chunk = self.pcm.read()
            with self._cond:
                self._data += chunk
                self._cond.notify_all()

    @property
    def data(self) -> bytes:
        with self._cond:
            return bytes(self._data)

    def wait_bytes(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._data) >= n, timeout)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)  # the pending read returns with the next period
        assert not self._thread.is_alive()
        self.pcm.close()


# -- speech fixtures ------------------------------------------------------------------------


def test_speech_fixtures_are_16k_mono_sentences_with_distinct_first_words(
    speech_fixtures: list[SpeechFixture],
) -> None:
    assert 5 <= len(speech_fixtures) <= 6
    for fixture in speech_fixtures:
        pcm = read_wav_pcm(fixture.path)  # raises unless 16 kHz mono 16-bit
        assert abs(len(pcm) / 32 - fixture.duration_ms) <= 1
        words = fixture.text.split()
        assert 5 <= len(words) <= 10, fixture.text
        assert not any(mark in fixture.text for mark in ",.;:?!"), fixture.text
        assert fixture.max_internal_silence_ms < 400, fixture.path.name
    first_words = [f.first_word.lower() for f in speech_fixtures]
    assert len(set(first_words)) == len(first_words)


def test_read_wav_pcm_rejects_other_formats(tmp_path: Path) -> None:
    import wave

    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(64))
    with pytest.raises(ValueError, match="channels=2"):
        read_wav_pcm(path)


# -- ALSA capture through the FIFO ----------------------------------------------------------


async def test_capture_receives_fixture_bytes_at_real_time(
    alsa_source: AlsaFifoSource, speech_fixtures: list[SpeechFixture]
) -> None:
    fixture = min(speech_fixtures, key=lambda f: f.duration_ms)
    lead_in = alsa_source.play_silence(0.2)
    speech = alsa_source.play_wav(fixture.path)
    wanted = 6400 + speech.nbytes + PERIOD_BYTES  # lead-in, speech, one period of idle fill

    speech_played = asyncio.create_task(speech.await_done(timeout=10))
    pcm = await asyncio.to_thread(open_capture)
    started = time.monotonic()
    captured = bytearray()
    try:
        while len(captured) < wanted:
            frames, chunk = await asyncio.to_thread(pcm.read)
            assert (frames, len(chunk)) == (800, PERIOD_BYTES)
            captured += chunk
    finally:
        pcm.close()
    elapsed = time.monotonic() - started

    assert lead_in.start_offset_bytes == 0
    assert speech.start_offset_bytes == 6400
    assert captured[:6400] == bytes(6400)
    assert captured[6400 : 6400 + len(fixture.pcm)] == fixture.pcm
    # the padded tail of the last period and the idle fill are digital silence
    assert captured[6400 + len(fixture.pcm) :] == bytes(wanted - 6400 - len(fixture.pcm))
    await speech_played  # resolved from the feeder thread
    audio_s = wanted / 32000
    assert 0.8 * audio_s <= elapsed <= 1.5 * audio_s + 0.3, (elapsed, audio_s)
    assert lead_in.started_monotonic is not None
    assert speech.started_monotonic is not None
    assert speech.started_monotonic - lead_in.started_monotonic == pytest.approx(0.2, abs=0.1)
    assert speech.finished_monotonic is not None
    # started = after its first period was written, finished = after its last one
    played_s = speech.finished_monotonic - speech.started_monotonic
    assert played_s == pytest.approx(speech.duration_s - 0.05, abs=0.15)


def test_pause_stalls_the_reader_and_resume_loses_nothing(alsa_source: AlsaFifoSource) -> None:
    beep = tone(1.0, 440.0, 0.5)
    capture = CaptureThread()
    try:
        handle = alsa_source.play_pcm(beep, "beep")
        handle.wait_started(5)
        alsa_source.pause()
        at_pause = len(capture.data)
        # a stalled device: at most the two periods already in the pipe arrive
        assert not capture.wait_bytes(at_pause + 3 * PERIOD_BYTES, timeout=0.5)
        alsa_source.resume()
        handle.wait(5)
        assert handle.start_offset_bytes is not None
        end = handle.start_offset_bytes + len(beep)
        assert capture.wait_bytes(end, timeout=5)
        assert capture.data[handle.start_offset_bytes : end] == beep
        assert alsa_source.lag_resyncs == 0  # resuming rebased the schedule, no catch-up
    finally:
        capture.close()


def test_reader_can_reopen_and_offsets_restart(alsa_source: AlsaFifoSource) -> None:
    first = CaptureThread()
    assert first.wait_bytes(2 * PERIOD_BYTES, timeout=5)
    first.close()
    alsa_source.wait_disconnected(timeout=5)

    beep = tone(0.3, 880.0, 0.3)
    handle = alsa_source.play_pcm(beep, "beep")  # waits for the next reader
    second = CaptureThread()
    try:
        handle.wait(5)
        assert alsa_source.connections == 2
        assert handle.connection == 2
        assert handle.start_offset_bytes == 0
        assert second.wait_bytes(len(beep), timeout=5)
        assert second.data[: len(beep)] == beep
    finally:
        second.close()


def test_unset_infile_variable_makes_the_device_fail_to_open(
    alsa_source: AlsaFifoSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(alsa_source.infile_var)
    with pytest.raises(alsaaudio.ALSAAudioError, match=r"\[testcap\]"):
        open_capture()


def test_stop_returns_when_no_reader_ever_opened(tmp_path: Path) -> None:
    source = AlsaFifoSource(tmp_path, "idlecap").start()
    handle = source.play_silence(0.1)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 2
    assert not handle.done.is_set()
    assert source.connections == 0


# -- mosquitto and the MQTT observers -------------------------------------------------------


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_broker_restarts_on_same_port_keeping_retained_and_collector_resubscribes(
    mqtt_broker: MosquittoBroker,
) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    publish(host, port, "edgecap/test/state", b"online", retain=True)
    with MqttCollector(host, port, "edgecap/test/#") as collector:
        mqtt_broker.stop()
        assert _refused(host, port)
        assert mqtt_broker.persistence_file.exists()
        mqtt_broker.start()
        assert mqtt_broker.port == port
        collector.wait_ready(2, timeout=10)  # reconnected and subscribed again
        publish(host, port, "edgecap/test/turn", b'{"text": "hello"}', qos=1)
        [turn] = collector.wait_for_count("edgecap/test/turn", 1, timeout=5)
    assert turn == Message("edgecap/test/turn", b'{"text": "hello"}', retain=False, qos=1)
    assert turn.json() == {"text": "hello"}
    assert read_retained(host, port, "edgecap/test/state") == b"online"


def test_read_retained_returns_none_without_waiting_and_sees_clears(
    mqtt_broker: MosquittoBroker,
) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    started = time.monotonic()
    assert read_retained(host, port, "edgecap/none", timeout=5) is None
    assert time.monotonic() - started < 2
    mosquitto_pub(host, port, "edgecap/r", b"\x00\xffbinary", retain=True)
    assert read_retained(host, port, "edgecap/r") == b"\x00\xffbinary"
    mosquitto_pub(host, port, "edgecap/r", b"", retain=True)  # clears the retained message
    assert read_retained(host, port, "edgecap/r") is None


def test_mosquitto_sub_reads_retained_message(mqtt_broker: MosquittoBroker) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    publish(host, port, "edgecap/dev1/availability", "online", retain=True)
    assert mosquitto_sub_one(host, port, "edgecap/+/availability") == (
        "edgecap/dev1/availability",
        b"online",
    )
    assert mosquitto_sub_one(host, port, "edgecap/nothing", timeout_s=1) is None


async def test_collector_async_wait_and_timeout_report(mqtt_broker: MosquittoBroker) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    with MqttCollector(host, port, ["a/#", "b"]) as collector:
        waiting = asyncio.create_task(collector.await_count("a/#", 2, timeout=5))
        for topic in ("a/1", "b", "a/2"):
            await asyncio.to_thread(publish, host, port, topic, topic)
        got = await waiting
        assert [m.topic for m in got] == ["a/1", "a/2"]
        assert [m.topic for m in collector.messages] == ["a/1", "b", "a/2"]
        with pytest.raises(TimeoutError, match="a/2"):
            await collector.await_for(lambda m: m.topic == "c", timeout=0.2)
        with pytest.raises(TimeoutError, match="3 matching"):
            collector.wait_for_count("a/#", 3, timeout=0.2)


def test_password_protected_broker(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path, users={"edge": "s3cret"})
    try:
        with pytest.raises(RuntimeError, match="CONNACK refused"):
            MqttCollector(broker.host, broker.port, "t", username="edge", password="no").start()
        with MqttCollector(
            broker.host, broker.port, "t", username="edge", password="s3cret"
        ) as collector:
            assert collector.ready_rounds == 1
    finally:
        broker.stop()
