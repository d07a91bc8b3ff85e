"""The daemon: capture -> buffer -> streaming sessions -> MQTT, until SIGTERM/SIGINT.

Wiring only; the decisions live in the sans-I/O modules (buffer and pacer, turn assembly,
error classification) and the I/O in the adapters (capture, session, publisher).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from edgecap.audio.capture import AlsaCapture, CaptureEvent, CaptureSettings
from edgecap.audio.frame import Frame
from edgecap.config import ConfigError, LoadedConfig, load_config
from edgecap.logs import setup_logging
from edgecap.mqtt.publisher import MqttPublisher, MqttSettings
from edgecap.mqtt.topics import Topics
from edgecap.protocol.url import StreamParams
from edgecap.streaming.buffer import AudioBuffer
from edgecap.streaming.session import (
    SessionSettings,
)
from edgecap.streaming.supervisor import SessionSupervisor
from edgecap.tokens import TokenClient, make_token_client
from edgecap.transcript import TranscriptTurn

log = logging.getLogger("edgecap")

EX_OK = 0
EX_CONFIG = 78
REPLAY_BUFFER_MS = 30_000


class Daemon:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        cfg = loaded.config
        self.topics = Topics(cfg.mqtt.prefix, cfg.device_id)
        self.buffer = AudioBuffer(REPLAY_BUFFER_MS, cfg.audio.frame_ms)
        self.audio_ready = asyncio.Event()
        self.audio_ok = asyncio.Event()
        self.stop = asyncio.Event()
        self.state = "starting"
        self.frames = 0
        self.tokens: TokenClient = make_token_client(cfg, loaded.secrets)
        self.supervisor = SessionSupervisor(
            self._session_settings,
            self.tokens,
            buffer=self.buffer,
            audio_ready=self.audio_ready,
            audio_ok=self.audio_ok,
            on_turn=self.on_turn,
            on_state=self.set_state,
        )
        self.publisher = MqttPublisher(
            MqttSettings(
                host=cfg.mqtt.host,
                port=cfg.mqtt.port,
                client_id=cfg.mqtt.client_id or f"edgecap-{cfg.device_id}",
                topics=self.topics,
                username=cfg.mqtt.username,
                password=loaded.secrets.mqtt_password,
                keepalive=cfg.mqtt.keepalive_seconds,
            )
        )
        self.capture: AlsaCapture | None = None

    # -- state -------------------------------------------------------------------------

    def set_state(self, state: str, detail: str = "") -> None:
        if state != self.state:
            self.state = state
            log.info("state %s%s", state, f": {detail}" if detail else "")

    # -- capture callbacks (on the loop) -------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        self.frames += 1
        dropped = self.buffer.append(frame)
        if dropped:
            log.warning("audio buffer full: dropped %d frame(s) of the oldest audio", dropped)
        self.audio_ready.set()

    def on_capture_event(self, event: CaptureEvent) -> None:
        if event.kind == "opened":
            log.info("audio device %s opened (%s)", event.device, event.detail)
            self.audio_ok.set()
        elif event.kind == "unavailable":
            retry = f"; retrying in {event.retry_in:.1f} s" if event.retry_in else ""
            log.error("%s%s", event.detail, retry)
            self.audio_ok.clear()
            self.supervisor.session_stop.set()  # no audio: do not keep a billed session open
            self.set_state("audio_unavailable", event.detail)
        elif event.kind == "overrun":
            log.warning(
                "audio overrun on %s (%s): the capture thread fell behind",
                event.device,
                event.detail,
            )

    def on_turn(self, turn: TranscriptTurn) -> None:
        self.publisher.publish(self.topics.transcript, turn.to_json(), qos=1)
        log.info("turn %s published (%d words)", turn.id, len(turn.words))

    # -- sessions ------------------------------------------------------------------------

    def _session_settings(self) -> SessionSettings:
        cfg = self.loaded.config
        ep = cfg.endpointing
        return SessionSettings(
            url=cfg.streaming.url,
            params=StreamParams(
                sample_rate=cfg.audio.sample_rate,
                speech_model=cfg.streaming.speech_model,
                format_turns=cfg.streaming.format_turns,
                end_of_turn_confidence_threshold=ep.end_of_turn_confidence_threshold,
                min_turn_silence=ep.min_turn_silence,
                max_turn_silence=ep.max_turn_silence,
            ),
            device_id=cfg.device_id,
            connect_timeout=cfg.streaming.connect_timeout_seconds,
            begin_timeout=cfg.streaming.begin_timeout_seconds,
            terminate_timeout=cfg.streaming.terminate_timeout_seconds,
            max_session_seconds=cfg.session.max_session_seconds,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        cfg = self.loaded.config
        self.publisher.start()
        self.capture = AlsaCapture(
            CaptureSettings(
                device=cfg.audio.device,
                sample_rate=cfg.audio.sample_rate,
                frame_ms=cfg.audio.frame_ms,
                periods=cfg.audio.periods,
                reopen_min_seconds=cfg.audio.reopen_min_seconds,
                reopen_max_seconds=cfg.audio.reopen_max_seconds,
            ),
            loop,
            self.on_frame,
            self.on_capture_event,
        )
        self.capture.start()
        log.info(
            "edgecap started: device_id=%s audio=%s streaming=%s mqtt=%s:%s",
            cfg.device_id,
            cfg.audio.device,
            cfg.streaming.url,
            cfg.mqtt.host,
            cfg.mqtt.port,
        )
        supervisor = asyncio.create_task(self.supervisor.run(), name="edgecap-supervisor")
        await self.stop.wait()
        self.set_state("stopping")
        # Stop capture first so the session can drain what was captured, then Terminate.
        await asyncio.to_thread(self.capture.stop)
        self.supervisor.stop()
        grace = cfg.streaming.terminate_timeout_seconds * 2 + 1
        try:
            await asyncio.wait_for(supervisor, grace)
        except TimeoutError:
            log.warning("session did not finish within %.0f s of stopping", grace)
        await self.tokens.aclose()
        await asyncio.to_thread(self.publisher.stop)
        stats = self.supervisor.stats
        log.info("edgecap stopped: %d session(s), %d turn(s)", stats.sessions, stats.turns)
        return EX_OK

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("received %s, stopping", sig.name)
        self.stop.set()


def run_command(config_path: str | None) -> int:
    """`edgecap run`: exit 0 after a clean stop, 78 on a bad config."""
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        setup_logging("info")
        for problem in exc.problems:
            log.error("config: %s", problem)
        return EX_CONFIG
    secrets = tuple(
        s
        for s in (
            loaded.secrets.token_service_credential,
            loaded.secrets.api_key,
            loaded.secrets.mqtt_password,
        )
        if s
    )
    setup_logging(loaded.config.logging.level, secrets)

    async def main() -> int:
        return await Daemon(loaded).run()

    return asyncio.run(main())


__all__ = ["Daemon", "run_command"]
