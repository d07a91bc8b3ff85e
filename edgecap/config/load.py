"""Loading: TOML file + environment overrides + validation + secrets, all problems at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from edgecap.config.auth import AuthMode
from edgecap.config.base import is_utf8, path_problem
from edgecap.config.env import apply_env_overrides
from edgecap.config.files import read_toml
from edgecap.config.lint import config_warnings
from edgecap.config.model import SECTION_MODELS, Config, default_state_dir
from edgecap.config.problems import (
    ConfigError,
    internal_error_problem,
    one_line,
    remove_inline_secrets,
    validation_problems,
)
from edgecap.config.secrets import Secrets, resolve_secrets
from edgecap.config.streaming import Provider

DEFAULT_CONFIG_PATH = Path("/etc/edgecap/edgecap.toml")
CONFIG_FILE_NAME = "edgecap.toml"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration, its resolved secrets and the file it came from.

    ``warnings`` are one-line notes that do not stop the daemon (a secret file others can
    read, a key that has no effect in the chosen mode or model: ``lint.config_warnings``);
    `check-config` prints them and the daemon logs them at start.
    """

    config: Config
    secrets: Secrets
    path: Path
    warnings: tuple[str, ...] = ()


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$EDGECAP_CONFIG``, else ``$CONFIGURATION_DIRECTORY/edgecap.toml``, else the /etc path."""
    env = os.environ if environ is None else environ
    explicit = env.get("EDGECAP_CONFIG", "").strip()
    if explicit:
        return Path(explicit)
    config_dir = env.get("CONFIGURATION_DIRECTORY", "").split(":")[0].strip()
    if config_dir:
        return Path(config_dir) / CONFIG_FILE_NAME
    return DEFAULT_CONFIG_PATH


def _raw_path(table: Any, key: str) -> tuple[Path | None, bool]:
    """(path, usable) of a file key from unvalidated data; unusable when its type is wrong."""
    value = table.get(key) if isinstance(table, dict) else None
    if value is None:
        return None, True
    if isinstance(value, str) and value.strip() and path_problem(value) is None:
        return Path(value), True
    return None, False


def _raw_provider(streaming: Any) -> str | None:
    """``streaming.provider`` from unvalidated data; None when it is not a known one."""
    value = streaming.get("provider", "assemblyai") if isinstance(streaming, dict) else None
    if not isinstance(value, str) or value.lower() not in get_args(Provider):
        return None
    return value.lower()


def _secrets_best_effort(
    data: dict[str, Any], environ: Mapping[str, str], base_dir: Path
) -> tuple[list[str], tuple[str, ...]]:
    """Secret problems for a config that failed validation, so they are reported too."""
    auth = data.get("auth", {})
    mqtt = data.get("mqtt", {})
    mode = auth.get("mode", "token_service") if isinstance(auth, dict) else None
    if not isinstance(mode, str) or mode.lower() not in get_args(AuthMode):
        mode = None
    credential, credential_ok = _raw_path(auth, "credential_file")
    api_key, api_key_ok = _raw_path(auth, "api_key_file")
    openai_key, openai_key_ok = _raw_path(auth, "openai_api_key_file")
    password, password_ok = _raw_path(mqtt, "password_file")
    skip = {
        name
        for name, ok in (
            ("token_service_credential", credential_ok),
            ("api_key", api_key_ok),
            ("openai_api_key", openai_key_ok),
            ("mqtt_password", password_ok),
        )
        if not ok
    }
    secrets, problems = resolve_secrets(
        auth_mode=mode.lower() if mode else None,
        credential_file=credential,
        api_key_file=api_key,
        password_file=password,
        environ=environ,
        base_dir=base_dir,
        skip=frozenset(skip),
        provider=_raw_provider(data.get("streaming", {})),
        openai_api_key_file=openai_key,
    )
    return problems, secrets.warnings


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _location_problems(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> list[str]:
    """The variables naming the file must be UTF-8, like everything edgecap reads from the
    environment (the path ends up in logs and status lines)."""
    if path is not None:
        return []
    return [
        f"environment variable {name}: is not valid UTF-8 text; set it to a UTF-8 path"
        for name in ("EDGECAP_CONFIG", "CONFIGURATION_DIRECTORY")
        if not is_utf8(env.get(name, ""))
    ]


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Load, override, validate and resolve secrets; raise ``ConfigError`` with every problem.

    Relative secret file paths are taken relative to the config file's directory. Any other
    exception is a bug: it becomes a ``ConfigError`` of one line naming the exception and
    where it was raised (chained as ``__cause__``), so that no hostile file or environment
    ends the daemon with a traceback and exit status 1 (which systemd restarts in a loop).
    """
    env = os.environ if environ is None else environ
    try:
        return _load(path, env)
    except ConfigError:
        raise
    except Exception as exc:
        where = path if path is not None else "the configuration"
        raise ConfigError([internal_error_problem(where, exc)]) from exc


def _load(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> LoadedConfig:
    problems = _location_problems(path, env)
    if problems:
        raise ConfigError(problems)
    config_path = Path(path) if path is not None else default_config_path(env)
    base_dir = config_path.parent

    data, read_problems = read_toml(config_path)
    problems += read_problems
    data, inline_problems = remove_inline_secrets(data or {})
    problems += inline_problems
    data, env_sources, env_problems = apply_env_overrides(data, env)
    problems += env_problems
    if read_problems:
        raise ConfigError(_dedupe(problems))

    if "state_dir" not in data:
        data["state_dir"] = str(default_state_dir(env))
        if env.get("STATE_DIRECTORY"):
            env_sources.setdefault("state_dir", "environment variable STATE_DIRECTORY")
    for section in SECTION_MODELS:
        data.setdefault(section, {})  # validate absent sections too (auth has a required key)
    config: Config | None = None
    validation_error: ValidationError | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        validation_error = exc
    if validation_error is not None:
        problems += validation_problems(validation_error, env_sources)
        secret_problems, warnings = _secrets_best_effort(data, env, base_dir)
        raise ConfigError(_dedupe(problems + secret_problems), warnings)
    assert config is not None

    secrets, secret_problems = resolve_secrets(
        auth_mode=config.auth.mode,
        credential_file=config.auth.credential_file,
        api_key_file=config.auth.api_key_file,
        password_file=config.mqtt.password_file,
        environ=env,
        base_dir=base_dir,
        provider=config.streaming.provider,
        openai_api_key_file=config.auth.openai_api_key_file,
    )
    problems += secret_problems
    if secrets.mqtt_password is not None and config.mqtt.username is None:
        problems.append(
            "mqtt.username: required when an MQTT password is configured "
            f"({secrets.sources['mqtt_password']}); MQTT sends a password only with a user name"
        )
    if secrets.mqtt_password is not None and len(secrets.mqtt_password.encode()) > 65535:
        problems.append(
            f"mqtt.password_file: the MQTT password ({secrets.sources['mqtt_password']}) is "
            "longer than 65535 bytes, the most MQTT can carry; use a shorter one"
        )
    all_warnings = (*secrets.warnings, *config_warnings(config))
    if problems:
        raise ConfigError(_dedupe(problems), all_warnings)
    warnings = tuple(one_line(w) for w in all_warnings)
    return LoadedConfig(config, secrets, config_path, warnings)
