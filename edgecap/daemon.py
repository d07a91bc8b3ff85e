"""The daemon: capture -> buffer -> streaming sessions -> MQTT, until SIGTERM/SIGINT.

Wiring only; the decisions live in the sans-I/O modules (buffer and pacer, turn assembly,
error classification) and the I/O in the adapters (capture, session, publisher).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from edgecap.audio.capture import AlsaCapture, CaptureEvent, CaptureSettings
from edgecap.audio.frame import Frame
from edgecap.config import ConfigError, LoadedConfig, load_config
from edgecap.logs import setup_logging
from edgecap.mqtt.publisher import MqttPublisher, MqttSettings
from edgecap.mqtt.topics import Topics
from edgecap.protocol.errors import ErrorClass
from edgecap.protocol.url import StreamParams
from edgecap.streaming.buffer import AudioBuffer
from edgecap.streaming.session import (
    SessionFailed,
    SessionResult,
    SessionSettings,
    StreamingSession,
)
from edgecap.tokens import TokenClient, TokenError, make_token_client
from edgecap.transcript import TranscriptTurn

log = logging.getLogger("edgecap")

EX_OK = 0
EX_CONFIG = 78
REPLAY_BUFFER_MS = 30_000
STABLE_SESSION_SECONDS = 30.0
RECONNECT_MAX_SECONDS = 60.0


class Stopping(Exception):
    """Raised inside the retry loop's sleep when the daemon stops."""


class Daemon:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        cfg = loaded.config
        self.topics = Topics(cfg.mqtt.prefix, cfg.device_id)
        self.buffer = AudioBuffer(REPLAY_BUFFER_MS, cfg.audio.frame_ms)
        self.audio_ready = asyncio.Event()
        self.audio_ok = asyncio.Event()
        self.stop = asyncio.Event()
        self._session_stop = asyncio.Event()
        self.state = "starting"
        self.sessions = 0
        self.turns = 0
        self.frames = 0
        self.tokens: TokenClient = make_token_client(cfg, loaded.secrets)
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
            self._session_stop.set()  # no audio: do not keep a billed session open
            self.set_state("audio_unavailable", event.detail)
        elif event.kind == "overrun":
            log.warning(
                "audio overrun on %s (%s): the capture thread fell behind",
                event.device,
                event.detail,
            )

    def on_turn(self, turn: TranscriptTurn) -> None:
        self.turns += 1
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

    async def _one_session(self) -> SessionResult:
        await self._wait_or_stop(self.audio_ok.wait())
        self._session_stop.clear()
        token = await self.tokens.fetch()
        session = StreamingSession(
            self._session_settings(), self.buffer, self.audio_ready, self.on_turn
        )
        begin = await session.open(token.value)
        self.sessions += 1
        model = begin.model
        wanted = self.loaded.config.streaming.speech_model
        if model is not None and model != wanted:
            log.warning("server runs speech model %r, configured %r", model, wanted)
        self.set_state("streaming", f"session {begin.id}")
        result = await session.run(self._session_stop)
        self._log_result(result)
        if result.ended_by == "server" and result.classified is not None:
            cls = result.classified.error_class
            quick = result.duration < STABLE_SESSION_SECONDS
            if cls is not ErrorClass.SESSION_OVER and (quick or cls is not ErrorClass.TRANSIENT):
                raise SessionFailed(result.classified, "stream")
        return result

    def _log_result(self, r: SessionResult) -> None:
        billed = r.termination.session_duration_seconds if r.termination else None
        why = r.classified.line() if r.classified else ""
        log.info(
            "session %s ended (%s) after %.1f s, %.1f s audio sent, %d turn(s), billed %s s%s",
            r.session_id,
            r.ended_by,
            r.duration,
            r.audio_sent_ms / 1000,
            r.turns,
            "?" if billed is None else billed,
            f"; {why}" if r.ended_by == "server" else "",
        )
        if r.unfinished_text:
            log.warning("session ended inside a turn; unfinished text: %r", r.unfinished_text)

    async def _wait_or_stop(self, awaitable: Awaitable[object]) -> None:
        waiter = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self.stop.wait())
        done, pending = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if stopper in done:
            raise Stopping

    async def _sleep(self, seconds: float) -> None:
        await self._wait_or_stop(asyncio.sleep(seconds))

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        line = exc.classified.line() if isinstance(exc, SessionFailed) else str(exc)
        self.set_state("reconnecting", line)
        log.warning("%s; next attempt in %.1f s (attempt %d)", line, delay, state.attempt_number)

    async def supervise(self) -> None:
        """Keep a session open while audio flows; back off on failures."""
        while not self.stop.is_set():
            retrying = AsyncRetrying(
                retry=retry_if_exception_type((SessionFailed, TokenError)),
                wait=wait_exponential_jitter(initial=0.5, max=RECONNECT_MAX_SECONDS),
                sleep=self._sleep,
                before_sleep=self._before_retry,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        await self._one_session()
            except Stopping:
                return
            except Exception:  # a bug must not leave the daemon capturing with no session
                log.exception("unexpected error in the session supervisor; restarting it")
                try:
                    await self._sleep(RECONNECT_MAX_SECONDS / 4)
                except Stopping:
                    return

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
        supervisor = asyncio.create_task(self.supervise(), name="edgecap-supervisor")
        await self.stop.wait()
        self.set_state("stopping")
        # Stop capture first so the session can drain what was captured, then Terminate.
        await asyncio.to_thread(self.capture.stop)
        self._session_stop.set()
        grace = cfg.streaming.terminate_timeout_seconds * 2 + 1
        try:
            await asyncio.wait_for(supervisor, grace)
        except TimeoutError:
            log.warning("session did not finish within %.0f s of stopping", grace)
        await self.tokens.aclose()
        await asyncio.to_thread(self.publisher.stop)
        log.info("edgecap stopped: %d session(s), %d turn(s)", self.sessions, self.turns)
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
