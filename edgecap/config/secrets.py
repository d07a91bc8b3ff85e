"""Secret resolution: configured file, then systemd credential, then environment variable.

Secrets are never accepted inline in the config file, never put in a problem
message, and never shown by ``repr``/``str`` of ``Secrets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CREDENTIALS_DIRECTORY_VAR = "CREDENTIALS_DIRECTORY"


@dataclass(frozen=True)
class SecretSpec:
    """Where one secret may come from, in order of precedence."""

    name: str  # attribute of Secrets
    what: str  # human description
    file_key: str  # config key naming a file
    credential: str  # file name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
    env_var: str


TOKEN_SERVICE_CREDENTIAL = SecretSpec(
    "token_service_credential",
    "token-service credential",
    "auth.credential_file",
    "token-service-credential",
    "EDGECAP_TOKEN_SERVICE_CREDENTIAL",
)
ASSEMBLYAI_API_KEY = SecretSpec(
    "api_key",
    "AssemblyAI API key",
    "auth.api_key_file",
    "assemblyai-api-key",
    "EDGECAP_ASSEMBLYAI_API_KEY",
)
MQTT_PASSWORD = SecretSpec(
    "mqtt_password",
    "MQTT password",
    "mqtt.password_file",
    "mqtt-password",
    "EDGECAP_MQTT_PASSWORD",
)
SECRET_ENV_VARS = frozenset(
    s.env_var for s in (TOKEN_SERVICE_CREDENTIAL, ASSEMBLYAI_API_KEY, MQTT_PASSWORD)
)


def _mask(value: str | None) -> str:
    return "None" if value is None else "<redacted>"


@dataclass(frozen=True, repr=False)
class Secrets:
    """Resolved secrets; ``sources`` says where each came from (safe to log)."""

    token_service_credential: str | None = None
    api_key: str | None = None
    mqtt_password: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Secrets(token_service_credential={_mask(self.token_service_credential)}, "
            f"api_key={_mask(self.api_key)}, mqtt_password={_mask(self.mqtt_password)}, "
            f"sources={self.sources!r})"
        )

    __str__ = __repr__


def read_secret_file(path: Path, label: str) -> tuple[str | None, str | None]:
    """Return (secret, None) or (None, problem); the problem names ``label`` and the path only."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{label}: file {path} not found; create it or fix the path"
    except IsADirectoryError:
        return None, f"{label}: {path} is a directory; point it at the file holding the secret"
    except PermissionError:
        return None, (
            f"{label}: file {path} cannot be read (permission denied); give the service user "
            "read access or pass it with systemd LoadCredential="
        )
    except UnicodeDecodeError:
        return None, f"{label}: file {path} is not UTF-8 text"
    except OSError as exc:
        return None, f"{label}: file {path} cannot be read ({exc.strerror or type(exc).__name__})"
    value = raw.strip()
    if not value:
        return None, f"{label}: file {path} is empty; put the secret in it"
    if "\n" in value or "\r" in value:
        return None, f"{label}: file {path} holds more than one line; keep only the secret"
    return value, None


def resolve_secret(
    spec: SecretSpec, configured: Path | None, environ: Mapping[str, str], base_dir: Path
) -> tuple[str | None, str | None, list[str]]:
    """Return (secret, source, problems). A configured file is authoritative (no fallback)."""
    if configured is not None:
        path = configured if configured.is_absolute() else base_dir / configured
        value, problem = read_secret_file(path, spec.file_key)
        return value, f"file {path}", [problem] if problem else []
    credentials_dir = environ.get(CREDENTIALS_DIRECTORY_VAR, "")
    if credentials_dir:
        path = Path(credentials_dir) / spec.credential
        if path.exists() or path.is_symlink():
            label = f"$CREDENTIALS_DIRECTORY/{spec.credential} ({path})"
            value, problem = read_secret_file(path, label)
            return value, f"credential {spec.credential}", [problem] if problem else []
    env_value = environ.get(spec.env_var)
    if env_value is not None:
        value = env_value.strip()
        if not value:
            return (
                None,
                None,
                [f"{spec.env_var}: is set but empty; unset it or put the secret in it"],
            )
        if "\n" in value or "\r" in value:
            return None, None, [f"{spec.env_var}: holds more than one line; keep only the secret"]
        return value, f"environment {spec.env_var}", []
    return None, None, []


def missing_secret_problem(spec: SecretSpec, why: str) -> str:
    return (
        f"{spec.file_key}: no {spec.what} found, and it is required {why}; set "
        f"{spec.file_key} to a file holding it, or provide "
        f"$CREDENTIALS_DIRECTORY/{spec.credential} (systemd LoadCredential=) "
        f"or the environment variable {spec.env_var}"
    )


def resolve_secrets(
    *,
    auth_mode: str | None,
    credential_file: Path | None,
    api_key_file: Path | None,
    password_file: Path | None,
    environ: Mapping[str, str],
    base_dir: Path,
    skip: frozenset[str] = frozenset(),
) -> tuple[Secrets, list[str]]:
    """Resolve what ``auth_mode`` needs plus the optional MQTT password.

    ``auth_mode`` None (unknown) skips the auth secrets; names in ``skip`` (secret
    names whose file key is itself invalid) are not resolved.
    """
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    wanted: list[tuple[SecretSpec, Path | None, str | None]] = []
    if auth_mode == "token_service":
        wanted.append(
            (TOKEN_SERVICE_CREDENTIAL, credential_file, 'when auth.mode = "token_service"')
        )
    elif auth_mode == "api_key":
        wanted.append((ASSEMBLYAI_API_KEY, api_key_file, 'when auth.mode = "api_key"'))
    wanted.append((MQTT_PASSWORD, password_file, None))
    for spec, configured, required_why in wanted:
        if spec.name in skip:
            continue
        value, source, found_problems = resolve_secret(spec, configured, environ, base_dir)
        problems.extend(found_problems)
        if value is not None and source is not None:
            values[spec.name] = value
            sources[spec.name] = source
        elif required_why is not None and not found_problems:
            problems.append(missing_secret_problem(spec, required_why))
    secrets = Secrets(
        token_service_credential=values.get("token_service_credential"),
        api_key=values.get("api_key"),
        mqtt_password=values.get("mqtt_password"),
        sources=sources,
    )
    return secrets, problems
