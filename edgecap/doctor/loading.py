"""The configuration as the doctor sees it: every section that is valid, even when others
are not, so that one bad key does not hide what the rest of the chain would do.

A fully valid file gives the same sections as ``load_config``. When it is invalid, each
section of the file (with environment overrides applied) is validated on its own; a section
that fails is ``None`` and the checks that need it are skipped, never run on defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edgecap.config import (
    AudioConfig,
    AuthConfig,
    ConfigError,
    EndpointingConfig,
    MqttConfig,
    OpenAIConfig,
    Secrets,
    SessionConfig,
    StreamingConfig,
    SyncConfig,
    default_config_path,
    load_config,
)
from edgecap.config.env import apply_env_overrides
from edgecap.config.files import read_toml
from edgecap.config.model import DEVICE_ID_RE, default_device_id
from edgecap.config.problems import remove_inline_secrets
from edgecap.config.secrets import CREDENTIALS_DIRECTORY_VAR, resolve_secrets

# Where scripts/install.sh keeps the secrets that the unit passes with LoadCredential=; the
# doctor, run from a shell, reads them from there as the service would.
INSTALLED_CREDENTIALS_DIR = Path("/etc/edgecap/credentials")

_Section = TypeVar("_Section", bound=BaseModel)


@dataclass(frozen=True)
class DoctorConfig:
    """What the doctor knows about the configuration."""

    path: Path
    problems: tuple[str, ...]
    device_id: str
    audio: AudioConfig | None
    auth: AuthConfig | None
    streaming: StreamingConfig | None
    endpointing: EndpointingConfig | None
    session: SessionConfig | None
    mqtt: MqttConfig | None
    secrets: Secrets
    credentials_note: str = ""
    readable: bool = True
    warnings: tuple[str, ...] = ()
    openai: OpenAIConfig | None = None
    """What `edgecap check-config` warns about (keys of another mode, a region mismatch...)."""
    sync: SyncConfig | None = None

    @property
    def sync_provider(self) -> bool:
        return self.streaming is not None and self.streaming.provider == "assemblyai-sync"

    @property
    def valid(self) -> bool:
        return not self.problems

    def unavailable(self, *sections: str) -> str:
        """Why a check that needs ``sections`` (those that are None) cannot run."""
        if not self.readable:
            return "not run: the config file could not be read (see config)"
        listed = ", ".join(f"[{s}]" for s in sections)
        return f"not run: {listed} {'is' if len(sections) == 1 else 'are'} invalid (see config)"


def doctor_environ(
    environ: Mapping[str, str], installed_dir: Path = INSTALLED_CREDENTIALS_DIR
) -> tuple[dict[str, str], str]:
    """The environment to load with, and a note when the installed credentials are used."""
    env = dict(environ)
    if not env.get(CREDENTIALS_DIRECTORY_VAR) and installed_dir.is_dir():
        env[CREDENTIALS_DIRECTORY_VAR] = str(installed_dir)
        return env, f"secrets looked up in {installed_dir} as the unit's LoadCredential= does"
    return env, ""


def _section(model: type[_Section], raw: Any) -> _Section | None:
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError:
        return None


def _partial(path: Path, problems: list[str], env: Mapping[str, str], note: str) -> DoctorConfig:
    """Validate section by section; ``None`` for a section that is invalid or unreadable."""
    data, _ = read_toml(path)  # a FIFO, a device, a huge or deeply nested file: None
    if data is None:
        return DoctorConfig(
            path, tuple(problems), default_device_id(), None, None, None, None, None, None,
            Secrets(), note, readable=False,
        )  # fmt: skip
    data, _ = remove_inline_secrets(data)
    data, _, _ = apply_env_overrides(data, env)
    raw_id = data.get("device_id")
    device_id = (
        raw_id if isinstance(raw_id, str) and DEVICE_ID_RE.match(raw_id) else default_device_id()
    )
    auth = _section(AuthConfig, data.get("auth"))
    mqtt = _section(MqttConfig, data.get("mqtt"))
    secrets, _ = resolve_secrets(
        auth_mode=auth.mode if auth else None,
        credential_file=auth.credential_file if auth else None,
        api_key_file=auth.api_key_file if auth else None,
        password_file=mqtt.password_file if mqtt else None,
        environ=env,
        base_dir=path.parent,
        provider="openai" if _provider(data) == "openai" else "assemblyai",
        openai_api_key_file=auth.openai_api_key_file if auth else None,
    )
    return DoctorConfig(
        path=path,
        problems=tuple(problems),
        device_id=device_id,
        audio=_section(AudioConfig, data.get("audio")),
        auth=auth,
        streaming=_section(StreamingConfig, data.get("streaming")),
        endpointing=_section(EndpointingConfig, data.get("endpointing")),
        session=_section(SessionConfig, data.get("session")),
        mqtt=mqtt,
        secrets=secrets,
        credentials_note=note,
        openai=_section(OpenAIConfig, data.get("openai")),
        sync=_section(SyncConfig, data.get("sync")),
    )


def _provider(data: dict[str, object]) -> str:
    streaming = data.get("streaming")
    value = streaming.get("provider") if isinstance(streaming, dict) else None
    return value.lower() if isinstance(value, str) else "assemblyai"


def load_doctor_config(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    installed_credentials: Path = INSTALLED_CREDENTIALS_DIR,
) -> DoctorConfig:
    """Load like the daemon does; on problems keep every section that is valid by itself."""
    env, note = doctor_environ(os.environ if environ is None else environ, installed_credentials)
    config_path = Path(path) if path is not None else default_config_path(env)
    try:
        loaded = load_config(config_path, env)
    except ConfigError as exc:
        return _partial(config_path, exc.problems, env, note)
    c = loaded.config
    return DoctorConfig(
        path=loaded.path,
        problems=(),
        device_id=c.device_id,
        audio=c.audio,
        auth=c.auth,
        streaming=c.streaming,
        endpointing=c.endpointing,
        session=c.session,
        mqtt=c.mqtt,
        openai=c.openai,
        sync=c.sync,
        secrets=loaded.secrets,
        credentials_note=note,
        warnings=tuple(w for w in loaded.warnings if w not in loaded.secrets.warnings),
    )
