"""The daemon: capture -> buffer -> streaming sessions -> MQTT, until SIGTERM/SIGINT.

Wiring only; the decisions live in the sans-I/O modules (buffer and pacer, turn assembly,
error classification) and the I/O in the adapters (capture, session, publisher).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from datetime import date

from edgecap.audio.capture import AlsaCapture, CaptureEvent, CaptureSettings
from edgecap.audio.frame import Frame
from edgecap.config import ConfigError, LoadedConfig, load_config
from edgecap.logs import set_level, setup_logging, update_secrets
from edgecap.mqtt.publisher import MqttPublisher, MqttSettings
from edgecap.mqtt.topics import Topics
from edgecap.protocol.url import StreamParams
from edgecap.sdnotify import Notifier
from edgecap.streaming.buffer import AudioBuffer
from edgecap.streaming.session import (
    SessionSettings,
)
from edgecap.streaming.supervisor import SessionSupervisor
from edgecap.tokens import TokenClient, make_token_client
from edgecap.transcript import TranscriptTurn
from edgecap.watchdog import CaptureLiveness, watchdog_interval

log = logging.getLogger("edgecap")

EX_OK = 0
EX_CONFIG = 78
REPLAY_BUFFER_MS = 30_000
READY_WAIT_SECONDS = 10.0


def _secrets_of(loaded: LoadedConfig) -> tuple[str, ...]:
    s = loaded.secrets
    return tuple(x for x in (s.token_service_credential, s.api_key, s.mqtt_password) if x)


def _capture_settings(loaded: LoadedConfig) -> CaptureSettings:
    a = loaded.config.audio
    return CaptureSettings(
        device=a.device,
        sample_rate=a.sample_rate,
        frame_ms=a.frame_ms,
        periods=a.periods,
        reopen_min_seconds=a.reopen_min_seconds,
        reopen_max_seconds=a.reopen_max_seconds,
    )


def _mqtt_settings(loaded: LoadedConfig) -> MqttSettings:
    cfg = loaded.config
    return MqttSettings(
        host=cfg.mqtt.host,
        port=cfg.mqtt.port,
        client_id=cfg.mqtt.client_id or f"edgecap-{cfg.device_id}",
        topics=Topics(cfg.mqtt.prefix, cfg.device_id),
        username=cfg.mqtt.username,
        password=loaded.secrets.mqtt_password,
        keepalive=cfg.mqtt.keepalive_seconds,
    )


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
        self.publisher = MqttPublisher(_mqtt_settings(loaded))
        self.capture: AlsaCapture | None = None
        self.notifier = Notifier()
        self.watchdog_interval = watchdog_interval(os.environ, os.getpid())
        self.liveness = CaptureLiveness(
            stall_seconds=max(1.0, self.watchdog_interval or 5.0), started_at=time.monotonic()
        )
        self._capture_outcome = asyncio.Event()
        self._reload = asyncio.Event()
        self.session_id: str | None = None
        self._turns_day = date.today()
        self.turns_today = 0

    # -- state -------------------------------------------------------------------------

    def set_state(self, state: str, detail: str = "", error_class: str | None = None) -> None:
        if state == "streaming" and detail.startswith("session "):
            self.session_id = detail.removeprefix("session ")
        elif state != "streaming":
            self.session_id = None
        if state != self.state:
            self.state = state
            fields = {"EDGECAP_STATE": state, "SESSION_ID": self.session_id or ""}
            if error_class:
                fields["ERROR_CLASS"] = error_class
            log.info("state %s%s", state, f": {detail}" if detail else "", extra=fields)
        self.notifier.status(self.status_line())

    def status_line(self) -> str:
        """One human line for systemd's STATUS=."""
        if self._turns_day != date.today():
            self._turns_day, self.turns_today = date.today(), 0
        billed_min = self.supervisor.stats.billed_seconds / 60
        session = f"session {self.session_id[:8]}" if self.session_id else "no session"
        return (
            f"{self.state}; {session}; {self.turns_today} turns today; "
            f"{billed_min:.1f} billed min since start"
        )

    # -- capture callbacks (on the loop) -------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        self.frames += 1
        self.liveness.frame(time.monotonic())
        dropped = self.buffer.append(frame)
        if dropped:
            log.warning("audio buffer full: dropped %d frame(s) of the oldest audio", dropped)
        self.audio_ready.set()

    def on_capture_event(self, event: CaptureEvent) -> None:
        if event.kind == "opened":
            log.info("audio device %s opened (%s)", event.device, event.detail)
            self.liveness.frame(time.monotonic())
            self.audio_ok.set()
            self._capture_outcome.set()
        elif event.kind == "unavailable":
            retry = f"; retrying in {event.retry_in:.1f} s" if event.retry_in else ""
            log.error("%s%s", event.detail, retry, extra={"ERROR_CLASS": "audio"})
            self.liveness.unavailable(time.monotonic(), event.retry_in)
            self.audio_ok.clear()
            self.supervisor.session_stop.set()  # no audio: do not keep a billed session open
            self.set_state("audio_unavailable", event.detail, "audio")
            self._capture_outcome.set()
        elif event.kind == "overrun":
            log.warning(
                "audio overrun on %s (%s): the capture thread fell behind",
                event.device,
                event.detail,
            )

    def on_turn(self, turn: TranscriptTurn) -> None:
        self.status_line()  # rolls the day over
        self.turns_today += 1
        self.notifier.status(self.status_line())
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

    def _start_capture(self) -> None:
        self._capture_outcome.clear()
        self.capture = AlsaCapture(
            _capture_settings(self.loaded),
            asyncio.get_running_loop(),
            self.on_frame,
            self.on_capture_event,
        )
        self.liveness = CaptureLiveness(
            stall_seconds=self.liveness.stall_seconds, started_at=time.monotonic()
        )
        self.capture.start()

    async def _stop_capture(self) -> None:
        if self.capture is not None:
            await asyncio.to_thread(self.capture.stop)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        cfg = self.loaded.config
        self.publisher.start()
        self._start_capture()
        log.info(
            "edgecap started: device_id=%s audio=%s streaming=%s mqtt=%s:%s",
            cfg.device_id,
            cfg.audio.device,
            cfg.streaming.url,
            cfg.mqtt.host,
            cfg.mqtt.port,
        )
        # READY once the first capture outcome is known (opened, or reported missing: a
        # missing microphone is a state the daemon reports and retries, not a failed start).
        try:
            await asyncio.wait_for(self._capture_outcome.wait(), READY_WAIT_SECONDS)
        except TimeoutError:
            log.warning("audio device %s has not answered yet; continuing", cfg.audio.device)
        self.notifier.ready(self.status_line())
        tasks = [
            asyncio.create_task(self.supervisor.run(), name="edgecap-supervisor"),
            asyncio.create_task(self._watchdog_loop(), name="edgecap-watchdog"),
            asyncio.create_task(self._reload_loop(), name="edgecap-reload"),
        ]
        await self.stop.wait()
        self.notifier.stopping()
        self.set_state("stopping")
        for task in tasks[1:]:
            task.cancel()
        # Stop capture first so the session can drain what was captured, then Terminate.
        await self._stop_capture()
        self.supervisor.stop()
        grace = self.loaded.config.streaming.terminate_timeout_seconds * 2 + 1
        try:
            await asyncio.wait_for(tasks[0], grace)
        except TimeoutError:
            log.warning("session did not finish within %.0f s of stopping", grace)
        await self.tokens.aclose()
        await asyncio.to_thread(self.publisher.stop)
        stats = self.supervisor.stats
        log.info("edgecap stopped: %d session(s), %d turn(s)", stats.sessions, stats.turns)
        return EX_OK

    # -- systemd watchdog ----------------------------------------------------------------

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 every half interval, only while audio is being handled."""
        interval = self.watchdog_interval
        if interval is None:
            return
        withheld: str | None = None
        while True:
            await asyncio.sleep(interval)  # the ping period itself
            reason = self.liveness.reason_to_withhold(time.monotonic())
            if reason is None:
                if withheld:
                    log.info("audio flows again; watchdog pings resumed")
                withheld = None
                self.notifier.watchdog()
            elif reason != withheld:
                withheld = reason
                log.error(
                    "withholding the watchdog ping: %s", reason, extra={"ERROR_CLASS": "stall"}
                )

    # -- reload (SIGHUP) -----------------------------------------------------------------

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            self.notifier.reloading()
            try:
                await self.reload()
            finally:
                self.notifier.reloaded()
                self.notifier.status(self.status_line())

    async def reload(self) -> None:
        """Re-read the config; apply what changed; keep the old one if the new is invalid."""
        try:
            new = load_config(self.loaded.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload: %s", problem, extra={"ERROR_CLASS": "config"})
            log.error(
                "reload rejected: %d problem(s) in %s; still running on the previous config",
                len(exc.problems),
                self.loaded.path,
                extra={"ERROR_CLASS": "config"},
            )
            self.notifier.status(f"{self.status_line()}; reload rejected: {exc.problems[0]}")
            return
        old, self.loaded = self.loaded, new
        update_secrets(_secrets_of(new))
        set_level(new.config.logging.level)
        changed = [
            name
            for name in (
                "device_id",
                "audio",
                "auth",
                "streaming",
                "endpointing",
                "session",
                "mqtt",
            )
            if getattr(old.config, name) != getattr(new.config, name)
        ]
        log.info(
            "reload: config %s re-read; changed: %s", new.path, ", ".join(changed) or "nothing"
        )
        if "endpointing" in changed:
            await self._apply_endpointing()
        if "audio" in changed:
            log.info("reload: restarting audio capture on %s", new.config.audio.device)
            self.audio_ok.clear()
            self.supervisor.session_stop.set()
            await self._stop_capture()
            self._start_capture()
        if "mqtt" in changed or "device_id" in changed:
            log.info(
                "reload: reconnecting to MQTT %s:%s", new.config.mqtt.host, new.config.mqtt.port
            )
            await asyncio.to_thread(self.publisher.stop)
            self.topics = Topics(new.config.mqtt.prefix, new.config.device_id)
            self.publisher = MqttPublisher(_mqtt_settings(new))
            self.publisher.start()
        if "auth" in changed or old.secrets != new.secrets:
            log.warning(
                "reload: auth changes take effect after a restart (systemctl restart edgecap)"
            )

    async def _apply_endpointing(self) -> None:
        ep = self.loaded.config.endpointing
        session = self.supervisor.current
        sent = session is not None and await session.update_configuration(
            end_of_turn_confidence_threshold=ep.end_of_turn_confidence_threshold,
            min_turn_silence=ep.min_turn_silence,
            max_turn_silence=ep.max_turn_silence,
        )
        where = "to the live session (UpdateConfiguration)" if sent else "from the next session"
        log.info("reload: endpointing applied %s", where)

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
    setup_logging(loaded.config.logging.level, _secrets_of(loaded), loaded.config.logging.target)

    async def main() -> int:
        return await Daemon(loaded).run()

    return asyncio.run(main())


__all__ = ["Daemon", "run_command"]
