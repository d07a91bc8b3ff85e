"""Secret resolution: configured file, then systemd credential, then environment variable.

Secrets are never accepted inline in the config file, never put in a problem
message, and never shown by ``repr``/``str`` of ``Secrets``. Secret files are read like the
config file (``files.read_regular_file``: regular files only, at most 64 KiB, never
blocking); one that its group or others may read gives a warning, not a problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgecap.config.base import is_utf8
from edgecap.config.files import SECRET_MAX_BYTES, RefusedFileError, read_regular_file, size_text

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
OPENAI_API_KEY = SecretSpec(
    "openai_api_key",
    "OpenAI API key",
    "auth.openai_api_key_file",
    "openai-api-key",
    "EDGECAP_OPENAI_API_KEY",
)
MQTT_PASSWORD = SecretSpec(
    "mqtt_password",
    "MQTT password",
    "mqtt.password_file",
    "mqtt-password",
    "EDGECAP_MQTT_PASSWORD",
)
SECRET_SPECS = (TOKEN_SERVICE_CREDENTIAL, ASSEMBLYAI_API_KEY, OPENAI_API_KEY, MQTT_PASSWORD)
SECRET_ENV_VARS = frozenset(s.env_var for s in SECRET_SPECS)


def _mask(value: str | None) -> str:
    return "None" if value is None else "<redacted>"


@dataclass(frozen=True, repr=False)
class Secrets:
    """Resolved secrets; ``sources`` says where each came from and ``warnings`` what is
    unsafe about a source (both safe to log)."""

    token_service_credential: str | None = None
    api_key: str | None = None
    """The AssemblyAI API key."""
    mqtt_password: str | None = None
    openai_api_key: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Secrets(token_service_credential={_mask(self.token_service_credential)}, "
            f"api_key={_mask(self.api_key)}, openai_api_key={_mask(self.openai_api_key)}, "
            f"mqtt_password={_mask(self.mqtt_password)}, sources={self.sources!r})"
        )

    @property
    def values(self) -> tuple[str, ...]:
        """Every secret that is set, for redaction in logs."""
        return tuple(
            value
            for value in (
                self.token_service_credential,
                self.api_key,
                self.openai_api_key,
                self.mqtt_password,
            )
            if value
        )

    __str__ = __repr__


def _exposure_warning(label: str, path: Path, mode: int) -> str | None:
    """A warning when the file's group or others may read it (0400/0600 is what is wanted)."""
    readers = [who for who, bit in (("its group", 0o040), ("other users", 0o004)) if mode & bit]
    if not readers:
        return None
    return (
        f"{label}: file {path} is readable by {' and '.join(readers)} (mode {mode:04o}); "
        f"restrict it with chmod 600 {path} (owned by the service user), or pass it with "
        "systemd LoadCredential="
    )


def _unreadable(label: str, path: Path, exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{label}: file {path} not found; create it or fix the path"
    if isinstance(exc, RefusedFileError):
        advice = "keep only the secret in it" if exc.too_large else "point it at the secret's file"
        return f"{label}: {path} {exc.reason}; {advice}"
    if isinstance(exc, PermissionError):
        return (
            f"{label}: file {path} cannot be read (permission denied); give the service user "
            "read access or pass it with systemd LoadCredential="
        )
    if isinstance(exc, OSError):
        return f"{label}: file {path} cannot be read ({exc.strerror or type(exc).__name__})"
    return f"{label}: the path contains a NUL character; fix the path"  # ValueError


def read_secret_file(path: Path, label: str) -> tuple[str | None, str | None, str | None]:
    """Return (secret, problem, warning); problem and warning name ``label`` and the path only."""
    try:
        raw, mode = read_regular_file(path, SECRET_MAX_BYTES)
    except (OSError, RefusedFileError, ValueError) as exc:
        return None, _unreadable(label, path, exc), None
    if b"\x00" in raw:
        return None, f"{label}: file {path} contains a NUL byte; keep only the secret", None
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, f"{label}: file {path} is not UTF-8 text", None
    if not value:
        return None, f"{label}: file {path} is empty; put the secret in it", None
    if "\n" in value or "\r" in value:
        return None, f"{label}: file {path} holds more than one line; keep only the secret", None
    return value, None, _exposure_warning(label, path, mode)


def _env_secret(spec: SecretSpec, env_value: str) -> tuple[str | None, list[str]]:
    if not is_utf8(env_value):
        return None, [f"{spec.env_var}: is not valid UTF-8 text; set it to UTF-8 text or unset it"]
    value = env_value.strip()
    if not value:
        return None, [f"{spec.env_var}: is set but empty; unset it or put the secret in it"]
    if "\n" in value or "\r" in value:
        return None, [f"{spec.env_var}: holds more than one line; keep only the secret"]
    if len(value) > SECRET_MAX_BYTES:
        return None, [
            f"{spec.env_var}: is longer than {size_text(SECRET_MAX_BYTES)}; keep only the secret"
        ]
    return value, []


def resolve_secret(
    spec: SecretSpec, configured: Path | None, environ: Mapping[str, str], base_dir: Path
) -> tuple[str | None, str | None, list[str], list[str]]:
    """Return (secret, source, problems, warnings). A configured file is authoritative."""
    if configured is not None:
        path = configured if configured.is_absolute() else base_dir / configured
        value, problem, warning = read_secret_file(path, spec.file_key)
        return value, f"file {path}", [problem] if problem else [], [warning] if warning else []
    credentials_dir = environ.get(CREDENTIALS_DIRECTORY_VAR, "")
    if credentials_dir and not is_utf8(credentials_dir):
        problem = (
            f"environment variable {CREDENTIALS_DIRECTORY_VAR}: is not valid UTF-8 text; "
            "set it to a UTF-8 path (systemd sets it to /run/credentials/<unit>)"
        )
        return None, None, [problem], []
    if credentials_dir:
        path = Path(credentials_dir) / spec.credential
        if path.exists() or path.is_symlink():
            label = f"$CREDENTIALS_DIRECTORY/{spec.credential} ({path})"
            value, problem, warning = read_secret_file(path, label)
            source = f"credential {spec.credential}"
            return value, source, [problem] if problem else [], [warning] if warning else []
    env_value = environ.get(spec.env_var)
    if env_value is not None:
        value, problems = _env_secret(spec, env_value)
        return value, None if value is None else f"environment {spec.env_var}", problems, []
    return None, None, [], []


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
    provider: str | None = "assemblyai",
    openai_api_key_file: Path | None = None,
) -> tuple[Secrets, list[str]]:
    """Resolve what ``auth_mode`` needs plus the optional MQTT password: the token-service
    credential for "token_service" and "proxy", the provider's API key for "api_key" (the
    AssemblyAI key, or the OpenAI key when ``provider`` is "openai").

    ``auth_mode`` None (unknown) skips the auth secrets, ``provider`` None (unknown) the API
    key; names in ``skip`` (secret names whose file key is itself invalid) are not resolved.
    """
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    warnings: list[str] = []
    wanted: list[tuple[SecretSpec, Path | None, str | None]] = []
    if auth_mode in ("token_service", "proxy"):  # the same team credential for both
        why = f'when auth.mode = "{auth_mode}"'
        wanted.append((TOKEN_SERVICE_CREDENTIAL, credential_file, why))
    elif auth_mode == "api_key" and provider == "openai":
        why = 'when auth.mode = "api_key" and streaming.provider = "openai"'
        wanted.append((OPENAI_API_KEY, openai_api_key_file, why))
    elif auth_mode == "api_key" and provider in ("assemblyai", "assemblyai-sync"):
        wanted.append((ASSEMBLYAI_API_KEY, api_key_file, 'when auth.mode = "api_key"'))
    wanted.append((MQTT_PASSWORD, password_file, None))
    for spec, configured, required_why in wanted:
        if spec.name in skip:
            continue
        value, source, found_problems, found_warnings = resolve_secret(
            spec, configured, environ, base_dir
        )
        problems.extend(found_problems)
        warnings.extend(found_warnings)
        if value is not None and source is not None:
            values[spec.name] = value
            sources[spec.name] = source
        elif required_why is not None and not found_problems:
            problems.append(missing_secret_problem(spec, required_why))
    secrets = Secrets(
        token_service_credential=values.get("token_service_credential"),
        api_key=values.get("api_key"),
        mqtt_password=values.get("mqtt_password"),
        openai_api_key=values.get("openai_api_key"),
        sources=sources,
        warnings=tuple(warnings),
    )
    return secrets, problems
