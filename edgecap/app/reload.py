"""SIGHUP: re-read the configuration and apply what changed, part by part.

An invalid file is rejected (one line per problem) and the daemon keeps the previous
config. Keyterms, prompt and endpointing go to the live session as UpdateConfiguration (no
reconnect); other streaming options apply from the next session; budget and limits at
once; audio and MQTT changes restart that part; the gate, VAD and the way in (auth) after
a restart.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from edgecap.app.wiring import configure_ledger, secrets_of, stream_params
from edgecap.app.wiring_openai import openai_params
from edgecap.config import Config, ConfigError, load_config
from edgecap.providers.assemblyai.url import live_changes
from edgecap.providers.openai.params import live_changes as openai_live_changes
from edgecap.systemd.journal import set_level, update_secrets

if TYPE_CHECKING:
    from edgecap.app.daemon import Daemon

log = logging.getLogger("edgecap")


async def reload_config(d: Daemon) -> None:
    """Re-read the config; apply what changed; keep the old one if the new is invalid."""
    try:
        new = d.control.effective(load_config(d.loaded.path))
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload: %s", problem, extra={"ERROR_CLASS": "config"})
        log.error(
            "reload rejected: %d problem(s) in %s; still running on the previous config",
            len(exc.problems),
            d.loaded.path,
            extra={"ERROR_CLASS": "config"},
        )
        d.notifier.status(f"{d.status_line()}; reload rejected: {exc.problems[0]}")
        return
    old, d.loaded = d.loaded, new
    for warning in new.warnings:
        log.warning("reload: %s", warning)
    update_secrets(secrets_of(new))
    set_level(new.config.logging.level)
    changed = [
        name
        for name in (
            "device_id",
            "audio",
            "auth",
            "streaming",
            "endpointing",
            "openai",
            "sync",
            "session",
            "mqtt",
            "spool",
        )
        if getattr(old.config, name) != getattr(new.config, name)
    ]
    log.info("reload: config %s re-read; changed: %s", new.path, ", ".join(changed) or "nothing")
    if "session" in changed:
        if configure_ledger(d.ledger, new.config).reset_at != old.config.session.reset_time:
            d.ledger_store.recount(time.time())  # the billing days moved
        o, n = old.config.session, new.config.session
        gate_keys = (
            "gate",
            "vad_threshold",
            "vad_hangover_ms",
            "vad_quiet_dbfs",
            "preroll_ms",
            "idle_close_seconds",
            "max_sessions_per_minute",
        )
        if any(getattr(o, k) != getattr(n, k) for k in gate_keys):
            log.warning("reload: gate and VAD changes take effect after a restart")
        log.info("reload: budget, reset time and session limits apply from now")
    if "sync" in changed:
        log.warning("reload: [sync] changes take effect after a restart")
    if {"streaming", "endpointing", "openai"} & set(changed):
        await apply_streaming(d, old.config)
    if "audio" in changed:
        log.info("reload: restarting audio capture on %s", new.config.audio.device)
        await d.restart_capture()
    if {"mqtt", "spool", "device_id"} & set(changed):
        log.info("reload: reconnecting to MQTT %s:%s", new.config.mqtt.host, new.config.mqtt.port)
        await d.mqtt.stop()
        d.restart_mqtt()
    if "auth" in changed or old.secrets != new.secrets:
        log.warning(
            "reload: auth changes (and the streaming.url that goes with them) take effect "
            "after a restart (systemctl restart edgecap)"
        )


async def apply_streaming(d: Daemon, old: Config, why: str = "reload") -> bool:
    """Keyterms, prompt and endpointing go to the live session (UpdateConfiguration, no
    reconnect); the rest applies from the next session. True when a live session got it."""
    new = d.loaded.config
    if old.streaming.provider != new.streaming.provider:
        log.warning("reload: a change of streaming.provider takes effect after a restart")
        return False
    if new.streaming.provider == "assemblyai-sync":
        return False  # no session to update; [sync] applies after a restart
    if new.streaming.provider == "openai":
        live, later = openai_live_changes(openai_params(old.openai), openai_params(new.openai))
    else:
        live, later = live_changes(
            stream_params(old.audio, old.streaming, old.endpointing),
            stream_params(new.audio, new.streaming, new.endpointing),
        )
    sent = False
    if live:
        sent = await d.engine.update_session(**live)
        where = "to the live session (UpdateConfiguration, no reconnect)"
        log.info(
            "%s: %s applied %s",
            why,
            ", ".join(sorted(live)),
            where if sent else "from the next session (none is open)",
        )
    if later:
        log.info("%s: %s apply from the next session", why, ", ".join(sorted(later)))
    return sent
