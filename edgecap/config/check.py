"""`edgecap check-config`: validate the configuration and report every problem."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from edgecap.config.base import printable
from edgecap.config.load import default_config_path, load_config
from edgecap.config.model import Config
from edgecap.config.overlay import OVERLAY_FILE, SETTINGS, current, dotted, read_overlay
from edgecap.config.overlay import effective as apply_overlay
from edgecap.config.problems import ConfigError

EX_OK = 0
EX_CONFIG = 78  # sysexits.h; the systemd unit lists it in RestartPreventExitStatus=


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _stream(config: Config) -> str:
    """Where sessions go: AssemblyAI's URL as before, or "openai <url>"."""
    if config.streaming.provider == "openai":
        return f"openai {config.openai.url}"
    if config.streaming.provider == "assemblyai-sync":
        a = config.auth
        return f"sync {config.sync.effective_url(a.mode, a.token_service_url)}"
    return config.streaming.url


def check_config_command(
    path: str | None, environ: Mapping[str, str] | None = None, *, effective: bool = False
) -> int:
    """Print ``config OK: ...`` and return 0, or print every problem to stderr and return 78.

    Warnings go to stderr in both cases, one ``warning:`` line each; stdout stays one line,
    unless ``effective``: then one more line per run-time setting (`print_effective`).
    """
    env = os.environ if environ is None else environ
    config_path = path if path else str(default_config_path(env))
    try:
        loaded = load_config(path or None, env)
    except ConfigError as exc:
        print(f"config invalid: {printable(config_path)}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return EX_CONFIG
    config = loaded.config
    print(
        f"config OK: {printable(str(loaded.path))} (device_id={config.device_id}, "
        f"auth={config.auth.mode}, streaming={_stream(config)}, "
        f"mqtt={_host_port(config.mqtt.host, config.mqtt.port)})"
    )
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if effective:
        print_effective(config)
    return EX_OK


def print_effective(config: Config) -> None:
    """The run-time settings in force: ``section.key = value  (file)`` or ``(MQTT)`` when
    changed over MQTT (the overlay in state_dir), as the daemon would start with them."""
    overlay, problems = read_overlay(config.state_dir)
    merged, kept, dropped = apply_overlay(config, overlay)
    for problem in problems + dropped:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"run-time settings (changed over MQTT: {config.state_dir / OVERLAY_FILE}):")
    for name in SETTINGS:
        source = "MQTT" if name in kept else "file"
        value = json.dumps(current(merged, name), ensure_ascii=False)
        print(f"  {dotted(name)} = {value}  ({source})")
