"""The daemon: capture -> buffer -> streaming sessions -> MQTT, until SIGTERM/SIGINT.

Wiring only; the decisions live in the sans-I/O modules (buffer and pacer, turn assembly,
error classification) and the I/O in the adapters (capture, session, publisher).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from datetime import date, datetime

from edgecap.app.control import Control
from edgecap.app.reload import reload_config
from edgecap.app.status import StatusModel
from edgecap.app.wiring import (
    admission_settings,
    capture_settings,
    configure_ledger,
    credential_source,
    mqtt_service_settings,
    retry_settings,
    secrets_of,
    session_settings,
    session_settings_for,
)
from edgecap.app.wiring_sync import sync_pipeline, sync_where
from edgecap.audio.capture import CaptureEvent, CaptureProcess
from edgecap.audio.frame import Frame
from edgecap.auth.tokens import CredentialSource
from edgecap.billing.gate import MicroVadDetector
from edgecap.billing.ledger import Ledger, billing_summary
from edgecap.billing.store import LedgerStore
from edgecap.config import ConfigError, LoadedConfig, load_config
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.runner import Engine
from edgecap.engine.session import SessionSettings
from edgecap.mqtt.service import MqttService
from edgecap.mqtt.stats import DaemonCounters
from edgecap.providers.assemblyai.url import redact_url
from edgecap.providers.turn import SpeakerRevision, Turn
from edgecap.runtime import DaemonThreadExecutor, Deadline, exit_backstop
from edgecap.sync.runner import SyncPipeline
from edgecap.systemd.journal import setup_logging
from edgecap.systemd.notify import Notifier
from edgecap.systemd.watchdog import CaptureLiveness, watchdog_interval, watchdog_loop
from edgecap.turns.revisions import RecentSessions
from edgecap.turns.transcript import TranscriptTurn

log = logging.getLogger("edgecap")

EX_OK = 0
EX_CONFIG = 78
READY_WAIT_SECONDS = 10.0
SHUTDOWN_SECONDS = 4.0
"""SIGTERM/SIGINT to exit, in any state (systemd and users expect well under 5 s)."""
BACKSTOP_MARGIN_SECONDS = 0.7
MQTT_STOP_RESERVE_SECONDS = 1.2  # the last PUBACKs and `offline` after the session ended
ABORT_SECONDS = 0.3
LIVENESS_MARGIN_SECONDS = 2.0
SPEAKER_SESSIONS_KEPT = 2


class Daemon:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.control = Control(loaded)  # the mute and run-time settings (MQTT), saved
        self.loaded = loaded = self.control.loaded  # the file with those settings over it
        cfg = loaded.config
        replay_ms = round(cfg.streaming.replay_buffer_seconds * 1000)
        self.buffer = AudioBuffer(replay_ms, cfg.audio.frame_ms)
        self.status = StatusModel(cfg.device_id)  # published retained on every change
        self.status.listeners.append(self._on_status)
        self.stop = asyncio.Event()
        self.state = "starting"
        self.frames = 0
        self._way_in = (cfg.auth, cfg.streaming.url)
        openai = cfg.openai if cfg.streaming.provider == "openai" else None
        self.tokens: CredentialSource = credential_source(
            cfg.auth, cfg.session, loaded.secrets, openai=openai
        )
        # Billed time per day, persisted in the state directory (survives restarts).
        self.ledger = configure_ledger(Ledger(), cfg)
        self.ledger_store = LedgerStore.open(cfg.state_dir, self.ledger, now=time.time())
        s = cfg.session
        self.vad = (
            MicroVadDetector(s.vad_threshold, s.vad_quiet_dbfs) if s.gate == "voice" else None
        )
        self.engine: Engine | SyncPipeline = (
            self._sync()
            if cfg.sync_provider
            else Engine(
                self._session_settings,
                self.tokens,
                buffer=self.buffer,
                on_turn=self.on_turn,
                on_partial=self.on_partial,
                on_revision=self.on_revision,
                reporter=self.status,
                counters=self.status.counters,  # one counters object, published in the status
                retry=retry_settings(cfg),
                # a spare single-use AssemblyAI token; an OpenAI secret is reused as it is
                prefetch=cfg.auth.mints_tokens and openai is None,
                admission=admission_settings(cfg),
                vad=self.vad,
                ledger=self.ledger,
                store=self.ledger_store,
                on_billing=self._session_recorded,
                on_heard=self.control.speech_without_transcript,
            )
        )
        self.capture: CaptureProcess | None = None
        # Transcripts (spooled on disk), availability, stats, discovery, Hermes, partials.
        self.mqtt = MqttService(
            mqtt_service_settings(loaded), self.counters, report=self.status.set_condition
        )
        self.publisher = self.mqtt.publisher  # retained messages published here are re-sent
        self.topics = self.mqtt.topics  # after every reconnect
        self.notifier = Notifier()
        self.watchdog_interval = watchdog_interval(os.environ, os.getpid())
        # Capture restarts a stalled device itself (after `stall_seconds`, reported); the
        # watchdog only steps in when that handling does not happen in time.
        self.liveness = CaptureLiveness(
            stall_seconds=max(
                capture_settings(cfg).stall_seconds + LIVENESS_MARGIN_SECONDS,
                self.watchdog_interval or 5.0,
            ),
            started_at=time.monotonic(),
        )
        self._capture_outcome = asyncio.Event()
        self._reload = asyncio.Event()
        self.session_id: str | None = None
        self._turns_day = date.today()
        self.speakers = RecentSessions(SPEAKER_SESSIONS_KEPT)
        self.turns_today = 0
        self.ledger_store.report_to(self.status.set_condition)  # kept in memory? (status)
        self.control.bind(self)  # the saved mute before the engine runs; commands

    def _sync(self) -> SyncPipeline:
        """The Sync API pipeline in place of the streaming engine (`assemblyai-sync`)."""
        assert self.vad is not None  # the Sync provider requires session.gate = "voice"
        return sync_pipeline(
            self.loaded.config,
            self.loaded.secrets,
            detector=self.vad,
            on_turn=self.on_turn,
            reporter=self.status,
            ledger=self.ledger,
            ledger_store=self.ledger_store,
            on_billing=self._session_recorded,
        )

    # -- state -------------------------------------------------------------------------

    def set_state(self, state: str, detail: str = "", error_class: str | None = None) -> None:
        """States the daemon itself knows (audio_unavailable, stopping); the engine
        sets the streaming ones on the same `StatusModel`."""
        self.status.set_state(state, detail=detail, error_class=error_class)

    def _on_status(self, status: StatusModel, what: str) -> None:
        """Every status change: one log line (with journal fields), retained on MQTT."""
        self.state, self.session_id = status.state, status.session_id
        if what == "state":
            fields = {"EDGECAP_STATE": status.state, "SESSION_ID": status.session_id or ""}
            if status.error_class:
                fields["ERROR_CLASS"] = status.error_class
            log.info("%s", status.summary(), extra=fields)
        self.publish_status()
        self.notifier.status(self.status_line())

    def publish_status(self) -> None:
        self.publisher.publish(self.topics.status, self.status.to_json(), qos=1, retain=True)

    def status_line(self) -> str:
        """One human line for systemd's STATUS=."""
        if self._turns_day != date.today():
            self._turns_day, self.turns_today = date.today(), 0
        now = datetime.now().astimezone()
        billed = self.ledger.today(now).billed_seconds + self.engine.open_session_seconds()
        session = f"session {self.session_id[:8]}" if self.session_id else "no session"
        return (
            f"{self.state}; {session}; {self.turns_today} turns today; "
            f"{billed / 60:.1f} billed min today"
        )

    # -- capture callbacks (on the loop) -------------------------------------------------

    def on_frame(self, frame: Frame) -> None:
        self.frames += 1
        self.liveness.frame(time.monotonic())
        self.engine.on_frame(frame)  # buffered; a full buffer is reported as a gap
        if self.capture is not None:  # while only listening, quiet frames may come late
            self.capture.hold_quiet = self.engine.only_listening

    def on_capture_event(self, event: CaptureEvent) -> None:
        if event.kind == "opening":  # a capture child is opening the device
            log.info("opening audio device %s (%s)", event.device, event.detail)
            self.liveness.unavailable(time.monotonic(), event.retry_in)
        elif event.kind == "opened":
            log.info("audio device %s opened (%s)", event.device, event.detail)
            self.liveness.frame(time.monotonic())
            self.engine.audio_available(True)
            self._capture_outcome.set()
        elif event.kind == "unavailable":
            retry = f"; retrying in {event.retry_in:.1f} s" if event.retry_in else ""
            log.error("%s%s", event.detail, retry, extra={"ERROR_CLASS": "audio"})
            self.liveness.unavailable(time.monotonic(), event.retry_in)
            self.set_state("audio_unavailable", event.detail, "audio")
            self.engine.audio_available(False, reported=True)  # no billed session without audio
            self._capture_outcome.set()
        elif event.kind == "overrun":
            log.warning(
                "audio overrun on %s (%s): the capture process fell behind; audio was lost",
                event.device,
                event.detail,
            )

    def on_turn(self, turn: TranscriptTurn) -> None:
        self.speakers.published(turn)  # kept only if it has a label
        self.status_line()  # rolls the day over
        self.turns_today += 1
        self.notifier.status(self.status_line())
        self.mqtt.publish_turn(turn)  # committed to the spool, then published
        log.info("turn %s spooled for MQTT (%d words)", turn.id, len(turn.words))

    def on_revision(self, session_id: str, revision: SpeakerRevision) -> None:
        """SpeakerRevision: each turn whose speakers changed is published again, with the
        same id and a higher `revision`."""
        revised = self.speakers.apply(session_id, revision)
        for turn in revised:
            self.mqtt.publish_turn(turn)
        if revised:
            log.info(
                "session %s: speaker labels revised on %d turn(s); republished (revision %s)",
                session_id,
                len(revised),
                ", ".join(f"{t.turn_order}:{t.speaker}" for t in revised),
            )

    def _session_recorded(self) -> None:
        """A session ended and is in the ledger: today's totals changed."""
        self.mqtt.publish_stats()
        self.notifier.status(self.status_line())

    def on_partial(self, session_id: str, turn: Turn) -> None:
        self.mqtt.publish_partial(session_id, turn)

    def counters(self) -> DaemonCounters:
        """What capture and streaming counted, for the retained `stats` message."""
        s = self.status.counters
        return DaemonCounters(
            frames_captured=self.frames,
            overruns=self.capture.overruns if self.capture is not None else 0,
            sessions=s.sessions,
            reconnects=s.reconnects,
            turns=s.turns,
            speech_without_transcript=self.control.events,
            billed_seconds=self.engine.billed_seconds,
            billing=billing_summary(
                self.ledger,
                datetime.now().astimezone(),
                open_session_seconds=self.engine.open_session_seconds(),
                gate=self.loaded.config.session.gate,
            ),
            ledger_storage=self.ledger_store.health.payload(),
            sync=self.engine.queue.summary() if isinstance(self.engine, SyncPipeline) else None,
        )

    # -- sessions ------------------------------------------------------------------------

    def _session_settings(self) -> SessionSettings:
        """The next session's settings, from the current config; the way in (auth mode and
        the URL it goes with) stays the one the daemon started with until a restart, as the
        credential source does."""
        cfg = self.loaded.config
        if cfg.auth == self._way_in[0]:
            return session_settings(cfg)
        auth, url = self._way_in
        return session_settings_for(
            cfg.device_id,
            audio=cfg.audio,
            auth=auth,
            streaming=cfg.streaming.model_copy(update={"url": url}),
            endpointing=cfg.endpointing,
            session=cfg.session,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _start_capture(self) -> None:
        self._capture_outcome.clear()
        self.capture = CaptureProcess(
            capture_settings(self.loaded.config),
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
            await self.capture.stop()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(DaemonThreadExecutor())  # a hung lookup never holds the exit
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        cfg = self.loaded.config
        self.mqtt.start()
        self.publish_status()  # "starting", retained
        self._start_capture()
        log.info(
            "edgecap started: device_id=%s audio=%s streaming=%s %s mqtt=%s:%s",
            cfg.device_id,
            cfg.audio.device,
            cfg.streaming.provider,
            sync_where(cfg) or redact_url(self._session_settings().url),
            cfg.mqtt.host,
            cfg.mqtt.port,
        )
        # READY once the first capture outcome is known: opened, or reported unavailable (a
        # missing, busy or hanging microphone is a state the daemon reports and retries, not
        # a failed start; the capture process reports a hanging open after 5 s).
        outcome = asyncio.ensure_future(self._capture_outcome.wait())
        stopping = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait(
            {outcome, stopping}, timeout=READY_WAIT_SECONDS, return_when="FIRST_COMPLETED"
        )
        for waiter in (outcome, stopping):
            waiter.cancel()
        if not self._capture_outcome.is_set() and not self.stop.is_set():
            log.warning("audio device %s has not answered yet; continuing", cfg.audio.device)
        self.notifier.ready(self.status_line())
        tasks = [
            asyncio.create_task(self.engine.run(), name="edgecap-engine"),
            asyncio.create_task(
                watchdog_loop(
                    self.watchdog_interval, lambda: self.liveness, self.notifier.watchdog
                ),
                name="edgecap-watchdog",
            ),
            asyncio.create_task(self._reload_loop(), name="edgecap-reload"),
        ]
        await self.stop.wait()
        await self._shutdown(tasks[0], tasks[1:])
        return EX_OK

    async def _shutdown(self, engine: asyncio.Task[None], others: list[asyncio.Task[None]]) -> None:
        """Stop within `SHUTDOWN_SECONDS` whatever is hanging: capture first (what it has
        captured is sent), then the session (drained, Terminate, Termination awaited within
        the budget), then MQTT (the last PUBACKs and `offline`, within what is left)."""
        deadline = Deadline(SHUTDOWN_SECONDS)
        backstop = exit_backstop(SHUTDOWN_SECONDS + BACKSTOP_MARGIN_SECONDS, self._overran)
        self.notifier.stopping()
        self.set_state("stopping")
        for task in others:
            task.cancel()
        await self._stop_capture()
        self.engine.stop(within=deadline.left(MQTT_STOP_RESERVE_SECONDS))
        try:
            await asyncio.wait_for(asyncio.shield(engine), deadline.left(MQTT_STOP_RESERVE_SECONDS))
        except TimeoutError:
            log.warning("the session did not end within the stop budget; closing it now")
            self.engine.abort()
            engine.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(engine, ABORT_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.tokens.aclose(), ABORT_SECONDS)
        await self.mqtt.stop(deadline.left())
        self.ledger_store.close()
        stats = self.status.counters
        log.info("edgecap stopped: %d session(s), %d turn(s)", stats.sessions, stats.turns)
        backstop.cancel()

    def _overran(self) -> None:
        log.error(
            "edgecap did not stop within %.1f s of the signal (a bug: please report it with "
            "this log); exiting now, undelivered transcripts stay in the spool",
            SHUTDOWN_SECONDS + BACKSTOP_MARGIN_SECONDS,
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
        await reload_config(self)

    def restart_mqtt(self) -> None:
        """A new MQTT service for the current config (after its old one stopped)."""
        self.mqtt = MqttService(
            mqtt_service_settings(self.loaded), self.counters, report=self.status.set_condition
        )
        self.publisher, self.topics = self.mqtt.publisher, self.mqtt.topics
        self.control.attach(self.mqtt)
        self.mqtt.start()
        self.publish_status()

    async def restart_capture(self) -> None:
        self.engine.audio_available(False)  # the open session ends; reopens with audio
        await self._stop_capture()
        self._start_capture()

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("received %s, stopping", sig.name)
        self.stop.set()


def run_command(config_path: str | None) -> int:
    """`edgecap run`: exit 0 after a clean stop, 78 on a bad config."""
    try:
        loaded = load_config(config_path)  # any failure is a ConfigError of one-line problems
    except ConfigError as exc:
        setup_logging("info")
        for problem in exc.problems:
            log.error("config: %s", problem)
        for warning in exc.warnings:
            log.warning("config: %s", warning)
        return EX_CONFIG
    setup_logging(loaded.config.logging.level, secrets_of(loaded), loaded.config.logging.target)
    for warning in loaded.warnings:
        log.warning("config: %s", warning, extra={"ERROR_CLASS": "config"})

    async def main() -> int:
        return await Daemon(loaded).run()

    return asyncio.run(main())


__all__ = ["Daemon", "run_command"]
