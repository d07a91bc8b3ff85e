"""`edgecap check-config`: validate the configuration and report every problem."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from edgecap.config.base import printable
from edgecap.config.load import default_config_path, load_config
from edgecap.config.model import Config
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


def check_config_command(path: str | None, environ: Mapping[str, str] | None = None) -> int:
    """Print ``config OK: ...`` and return 0, or print every problem to stderr and return 78.

    Warnings go to stderr in both cases, one ``warning:`` line each; stdout stays one line.
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
    return EX_OK
