"""Control over MQTT: the privacy mute and run-time settings (docs/mqtt.md, Commands).

- The mute: `{prefix}/{device_id}/mute/set` `ON`/`OFF`; the engine carries it out
  (`Engine.set_muted`); the state is saved in `<state_dir>/mute` (it survives restarts;
  `[control] start_muted` only says how a device with no saved state starts) and published
  retained on `{prefix}/{device_id}/mute` on every change and after every (re)connect.
- Settings: `{prefix}/{device_id}/set` with a JSON object (`edgecap.mqtt.commands`),
  validated by the config's own rules (`edgecap.config.overlay.apply`), saved as an
  overlay on the config file, applied live where the provider allows (UpdateConfiguration),
  else from the next session; the gate at once (`Engine.set_admission`). Every command is
  answered on `.../set/result`; the settings in force are retained on `.../settings`.
- Events: `speech_without_transcript` on `{prefix}/{device_id}/event`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecap.app.reload import apply_streaming
from edgecap.app.wiring import admission_settings
from edgecap.billing.gate import MicroVadDetector
from edgecap.config import Config, ConfigError, LoadedConfig
from edgecap.config import overlay as ov
from edgecap.engine.heard import SpeechWithoutTranscript
from edgecap.mqtt.commands import (
    EVENT_SCHEMA,
    OFF,
    ON,
    SETTINGS_SCHEMA,
    CommandError,
    parse_mute,
    parse_settings,
    result_payload,
    shown,
)
from edgecap.mqtt.service import MqttService
from edgecap.state.files import write_atomic
from edgecap.turns.transcript import iso_utc

if TYPE_CHECKING:
    from edgecap.app.daemon import Daemon

log = logging.getLogger("edgecap")

MUTE_FILE = "mute"
LIVE_SETTINGS = frozenset(
    {"keyterms", "min_turn_silence", "max_turn_silence", "end_of_turn_confidence_threshold"}
)


def read_mute(state_dir: Path, start_muted: bool) -> bool:
    """The saved mute state; `start_muted` when none was saved (or it cannot be read: a
    device meant to start muted stays muted)."""
    try:
        word = (state_dir / MUTE_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return start_muted
    except (OSError, UnicodeDecodeError) as exc:
        log.error("cannot read the saved mute state (%s); using control.start_muted", exc)
        return start_muted
    return start_muted if word not in (ON, OFF) else word == ON


@dataclasses.dataclass(frozen=True, slots=True)
class SettingsPlan:
    """A `set` command that validated: the config and the overlay it leads to."""

    config: Config
    overlay: dict[str, object]
    request: dict[str, Any]


def plan_settings(
    file_config: Config, overlay: Mapping[str, object], payload: bytes
) -> SettingsPlan | CommandError:
    """What a `set` payload would change (pure: nothing is applied). Any payload gives a
    plan or a `CommandError` naming the setting and the value that is wrong."""
    command = parse_settings(payload, ov.SETTINGS)
    if isinstance(command, CommandError):
        return command
    request: dict[str, Any] = {**command.changes, **dict.fromkeys(command.resets)}
    new_overlay = {k: v for k, v in overlay.items() if k not in command.resets}
    new_overlay.update(command.changes)
    try:
        config = ov.apply(file_config, new_overlay)
    except ConfigError as exc:
        return _blame(exc.problems[0], request)
    return SettingsPlan(config, new_overlay, request)


class Control:
    """Built from the config file as loaded; `loaded` is the config in force (the file
    with the saved run-time settings over it). `bind` hands it the running daemon."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.file_config = loaded.config
        cfg = loaded.config
        self.state_dir = cfg.state_dir
        overlay, problems = ov.read_overlay(cfg.state_dir)
        config, self.overlay, dropped = ov.effective(cfg, overlay)
        for warning in problems + dropped:
            log.warning("config: %s", warning, extra={"ERROR_CLASS": "config"})
        if self.overlay:
            log.info("run-time settings saved over MQTT apply: %s", shown(self.overlay))
        self.loaded = dataclasses.replace(loaded, config=config)
        self.muted = read_mute(cfg.state_dir, cfg.control.start_muted)
        self.events = 0
        self._d: Daemon | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def d(self) -> Daemon:
        assert self._d is not None, "Control.bind() has not been called"
        return self._d

    # -- wiring ----------------------------------------------------------------------------

    def bind(self, daemon: Daemon) -> None:
        """The daemon's engine and MQTT service exist: apply the saved mute before the
        engine runs (no session may open first) and attach to MQTT."""
        self._d = daemon
        if self.muted:
            log.warning("privacy mute is on (saved state or control.start_muted): no audio is sent")
            daemon.engine.set_muted(True)
        self.attach(daemon.mqtt)

    def attach(self, mqtt: MqttService) -> None:
        """Subscribe to the commands and publish the retained states (on every new
        MQTT service: the publisher re-sends them after every reconnect)."""
        mqtt.on_command(mqtt.topics.mute_set, self._mute_command)
        mqtt.on_command(mqtt.topics.settings_set, self._settings_command)
        self.publish_mute()
        self.publish_settings()

    def effective(self, loaded: LoadedConfig) -> LoadedConfig:
        """A re-read config file (SIGHUP) with the current overlay over it."""
        self.file_config = loaded.config
        config, self.overlay, dropped = ov.effective(loaded.config, self.overlay)
        for warning in dropped:
            log.warning("reload: %s", warning)
        return dataclasses.replace(loaded, config=config)

    # -- the mute ----------------------------------------------------------------------------

    def set_muted(self, muted: bool, why: str) -> None:
        changed = muted != self.muted
        self.muted = muted
        try:
            write_atomic(self.state_dir / MUTE_FILE, (ON if muted else OFF) + "\n")
        except OSError as exc:
            log.error("cannot save the mute state in %s: %s", self.state_dir, exc)
        self.d.engine.set_muted(muted)
        self.publish_mute()
        if changed:
            log.warning("privacy mute %s (%s)", ON if muted else OFF, why)

    def publish_mute(self) -> None:
        payload = (ON if self.muted else OFF).encode()
        self.d.publisher.publish(self.d.topics.mute, payload, qos=1, retain=True)

    def _mute_command(self, payload: bytes) -> None:
        muted = parse_mute(payload)
        if isinstance(muted, CommandError):
            log.warning("MQTT mute command ignored: %s", muted.message)
            return
        self.set_muted(muted, "MQTT command")

    # -- settings ----------------------------------------------------------------------------

    def publish_settings(self) -> None:
        cfg = self.d.loaded.config
        body: dict[str, Any] = {"schema": SETTINGS_SCHEMA}
        body.update({name: ov.current(cfg, name) for name in ov.SETTINGS})
        body["changed_over_mqtt"] = sorted(self.overlay)
        payload = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
        self.d.publisher.publish(self.d.topics.settings, payload, qos=1, retain=True)

    def _settings_command(self, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._settings(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reply(self, body: bytes) -> None:
        self.d.publisher.publish(self.d.topics.settings_result, body, qos=1)

    async def _settings(self, payload: bytes) -> None:
        async with self._lock:  # one command at a time, in the order they came
            try:
                await self._settings_locked(payload)
            except Exception as exc:  # never the daemon's end: say so and carry on
                log.exception("MQTT set command failed (an edgecap bug)")
                error = CommandError(f"internal error ({type(exc).__name__})")
                self._reply(result_payload(False, error=error))

    async def _settings_locked(self, payload: bytes) -> None:
        plan = plan_settings(self.file_config, self.overlay, payload)
        if isinstance(plan, CommandError):
            log.warning("MQTT set command refused: %s", plan.message)
            request = None if plan.request is None else dict(plan.request)
            self._reply(result_payload(False, request=request, error=plan))
            return
        saved = self._save(plan.overlay)
        old, self.overlay = self.d.loaded.config, plan.overlay
        self.d.loaded = dataclasses.replace(self.d.loaded, config=plan.config)
        applied = await self._apply(old, plan.config, plan.request)
        changes = ", ".join(f"{k} {v}" for k, v in applied.items())
        log.info("MQTT set: %s (%s)", shown(plan.request), changes)
        self._reply(result_payload(True, request=plan.request, applied=applied, saved=saved))
        self.publish_settings()

    def _save(self, overlay: dict[str, object]) -> bool:
        try:
            ov.write_overlay(self.state_dir, overlay)
        except OSError as exc:
            log.error("cannot save the run-time settings in %s: %s", self.state_dir, exc)
            return False
        return True

    async def _apply(self, old: Config, new: Config, request: dict[str, Any]) -> dict[str, str]:
        applied: dict[str, str] = {}
        if old.session.gate != new.session.gate:
            vad = None
            if new.session.gate == "voice":
                s = new.session
                vad = self.d.vad or MicroVadDetector(s.vad_threshold, s.vad_quiet_dbfs)
                self.d.vad = vad
            self.d.engine.set_admission(admission_settings(new), vad)
        live = False
        if (old.streaming, old.endpointing) != (new.streaming, new.endpointing):
            live = await apply_streaming(self.d, old, "MQTT set")
        for name in request:
            if name == "gate":
                applied[name] = "now"
            elif name in LIVE_SETTINGS and live:
                applied[name] = "live"
            else:
                applied[name] = "next_session"
        return applied

    # -- events ------------------------------------------------------------------------------

    def speech_without_transcript(self, heard: SpeechWithoutTranscript) -> None:
        self.events += 1
        log.info(
            "speech heard (%.1f s) but session %s produced no turn",
            heard.speech_seconds,
            heard.session_id,
        )
        body = {
            "schema": EVENT_SCHEMA,
            "event": "speech_without_transcript",
            "device_id": self.d.loaded.config.device_id,
            "session_id": heard.session_id,
            "speech_seconds": heard.speech_seconds,
            "at": iso_utc(heard.at),
        }
        self.d.publisher.publish(self.d.topics.event, json.dumps(body).encode(), qos=1)
        self.d.mqtt.publish_stats()


def _blame(problem: str, request: dict[str, Any]) -> CommandError:
    """The request's setting a config problem names (`endpointing.min_turn_silence: ...`)."""
    for name, value in request.items():  # the key the problem is about, then any it names
        if problem.startswith(ov.dotted(name) + ":"):
            return CommandError(problem, name, value, request)
    for name, value in request.items():
        if ov.dotted(name) in problem:
            return CommandError(problem, name, value, request)
    first = next(iter(request), None)
    return CommandError(problem, first, None if first is None else request[first], request)


__all__ = ["MUTE_FILE", "Control", "SettingsPlan", "plan_settings", "read_mute"]
