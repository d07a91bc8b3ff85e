"""Rules of the provider choice (`streaming.provider`), which span sections (pure functions).

With "assemblyai" the `[openai]` section must stay empty. With "openai": 24 kHz capture, no
proxy mode, the voice gate for manual commits, and none of AssemblyAI's own keys
(`[streaming]`'s model keys and `[endpointing]`). Such a key set to its default value is a
harmless leftover (the shipped example file sets several): a warning, not a problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from pydantic import BaseModel

from edgecap.config.auth import AuthConfig
from edgecap.config.base import _q, config_problems, printable, shorten
from edgecap.config.openai import (
    OPENAI_CLIENT_SECRETS_PATH,
    OPENAI_HOST,
    OPENAI_SAMPLE_RATE,
    OPENAI_TOKEN_SERVICE_EXAMPLE,
    SERVER_VAD_KEYS,
    OpenAIConfig,
)
from edgecap.config.session import SessionConfig
from edgecap.config.streaming import EndpointingConfig, StreamingConfig
from edgecap.config.sync import SyncConfig
from edgecap.config.sync_rules import SYNC_PROVIDER, sync_problems, sync_warnings
from edgecap.config.urls import is_loopback_host, url_host

ASSEMBLYAI_STREAMING_KEYS: Mapping[str, str | None] = MappingProxyType(
    {
        "region": None,
        "url": "openai.url",
        "speech_model": "openai.model",
        "format_turns": None,
        "keyterms": "openai.prompt",
        "prompt": "openai.prompt",
        "language_detection": None,
        "language_code": "openai.language",
        "language_codes": "openai.language",
        "mode": None,
        "vad_threshold": "openai.vad_threshold",
        "voice_focus": "openai.noise_reduction",
        "speaker_labels": None,
        "max_speakers": None,
    }
)
"""The `[streaming]` keys only AssemblyAI uses, and the `[openai]` key closest to each."""
ASSEMBLYAI_ENDPOINTING_KEYS: Mapping[str, str | None] = MappingProxyType(
    {
        "end_of_turn_confidence_threshold": None,
        "min_turn_silence": None,
        "max_turn_silence": "openai.silence_duration_ms",
    }
)
_OPENAI = 'streaming.provider = "openai"'

CAPTURE_RATE_RESAMPLED = 16000
"""The capture rate edgecap resamples to OpenAI's 24 kHz (the voice gate's rate)."""


def _shown(value: object) -> str:
    """A (non-secret) value as TOML writes it, shortened and printable."""
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, tuple | list):
        return printable(shorten(json.dumps(list(value), ensure_ascii=False)))
    if isinstance(value, bool):
        return "true" if value else "false"
    return _q(value)


def _set_keys(section: BaseModel, keys: Mapping[str, str | None]) -> list[tuple[str, object]]:
    return [(k, getattr(section, k)) for k in keys if k in section.model_fields_set]


def _is_default(section: BaseModel, key: str, value: object) -> bool:
    default = type(section).model_fields[key].get_default(call_default_factory=True)
    return bool(value == default)


def _assemblyai_leftovers(
    streaming: StreamingConfig, endpointing: EndpointingConfig
) -> tuple[list[tuple[str, str]], list[str]]:
    """(problems, warnings) for AssemblyAI's keys set while the provider is OpenAI."""
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    for name, section, keys in (
        ("streaming", streaming, ASSEMBLYAI_STREAMING_KEYS),
        ("endpointing", endpointing, ASSEMBLYAI_ENDPOINTING_KEYS),
    ):
        for key, value in _set_keys(section, keys):
            path, instead = f"{name}.{key}", keys[key]
            hint = f"; the OpenAI setting is {instead}" if instead else " (OpenAI has none like it)"
            if _is_default(section, key, value):
                warnings.append(
                    f"{path}: is AssemblyAI's and has no effect with {_OPENAI} (it is set to "
                    f"its default, {_shown(value)}); remove it{hint}"
                )
            else:
                problems.append(
                    (
                        path,
                        f"is AssemblyAI's and is not used with {_OPENAI} (got {_shown(value)}); "
                        f"remove it{hint}",
                    )
                )
    return problems, warnings


def _openai_problems(
    audio_rate: int, auth: AuthConfig, session: SessionConfig, openai: OpenAIConfig
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if auth.mode == "proxy":
        found.append(
            (
                "auth.mode",
                f'"proxy" is not supported with {_OPENAI} (got "proxy"): use "token_service" '
                "(ephemeral client secrets from the token service, with the same team "
                'credential) or "api_key"',
            )
        )
    if audio_rate not in (CAPTURE_RATE_RESAMPLED, OPENAI_SAMPLE_RATE):
        found.append(
            (
                "audio.sample_rate",
                f"must be {CAPTURE_RATE_RESAMPLED} or {OPENAI_SAMPLE_RATE} with {_OPENAI} (got "
                f"{audio_rate}): OpenAI takes 24 kHz PCM; edgecap resamples 16 kHz capture "
                f"(which the voice gate needs), or sends 24 kHz capture as it is",
            )
        )
    elif audio_rate == OPENAI_SAMPLE_RATE and session.gate == "voice":
        found.append(
            (
                "audio.sample_rate",
                f'must be {CAPTURE_RATE_RESAMPLED} with session.gate = "voice" (got '
                f"{audio_rate}): the voice detector hears 16 kHz audio; edgecap resamples it "
                "to OpenAI's 24 kHz",
            )
        )
    if openai.manual_commit and session.gate != "voice":
        why = "set" if openai.turn_detection else f'the default of openai.model = "{openai.model}"'
        found.append(
            (
                "session.gate",
                f'must be "voice" with openai.turn_detection "manual" ({why}; got session.gate '
                f'= "{session.gate}"): edgecap commits each turn at the end of local speech, '
                'which only the voice gate detects; set session.gate = "voice", or '
                'openai.turn_detection = "server_vad" with a model that has it',
            )
        )
    base = auth.token_service_url
    if base is not None and urlsplit(base).path.rstrip("/").endswith(OPENAI_CLIENT_SECRETS_PATH):
        found.append(
            (
                "auth.token_service_url",
                f"give the base URL without {OPENAI_CLIENT_SECRETS_PATH} (edgecap appends it), "
                f"e.g. {OPENAI_TOKEN_SERVICE_EXAMPLE}",
            )
        )
    return found


def check_provider(
    *,
    audio_rate: int,
    auth: AuthConfig,
    streaming: StreamingConfig,
    endpointing: EndpointingConfig,
    session: SessionConfig,
    openai: OpenAIConfig,
    sync: SyncConfig | None = None,
) -> None:
    """Raise every problem of the provider choice at once (each naming its key)."""
    found = sync_problems(
        provider=streaming.provider,
        audio_rate=audio_rate,
        auth=auth,
        session=session,
        openai=openai,
        sync=sync or SyncConfig(),
    )
    if streaming.provider == SYNC_PROVIDER:
        pass  # its rules are sync_problems'
    elif streaming.provider == "assemblyai":
        for key, value in _set_keys(openai, dict.fromkeys(OpenAIConfig.model_fields)):
            found.append(
                (
                    f"openai.{key}",
                    f'set, but streaming.provider is "assemblyai", which does not use [openai] '
                    f'(got {_shown(value)}); set streaming.provider = "openai" or remove '
                    f"openai.{key}",
                )
            )
    else:
        found += _openai_problems(audio_rate, auth, session, openai)
        found += _assemblyai_leftovers(streaming, endpointing)[0]
    if found:
        raise config_problems(found)


def _openai_auth_warnings(auth: AuthConfig, openai: OpenAIConfig) -> list[str]:
    explicit = auth.model_fields_set
    found = []
    if "api_key_file" in explicit:
        found.append(
            f"auth.api_key_file: holds the AssemblyAI API key, which {_OPENAI} does not use; "
            "the OpenAI key goes in auth.openai_api_key_file"
        )
    if "api_token_url" in explicit:
        found.append(
            f"auth.api_token_url: is AssemblyAI's token endpoint, not used with {_OPENAI} "
            "(OpenAI's is openai.client_secrets_url); remove it"
        )
    lifetime = auth.token_expires_in_seconds  # at its default (the example file): no warning
    if "token_expires_in_seconds" in explicit and not _is_default(
        auth, "token_expires_in_seconds", lifetime
    ):
        found.append(
            f"auth.token_expires_in_seconds: is the AssemblyAI token lifetime, not used with "
            f"{_OPENAI} (got {lifetime}); the client secret's is "
            "openai.secret_expires_seconds"
        )
    header = auth.mode == "api_key" and auth.api_key_auth == "header"
    mints_with_key = auth.mode == "api_key" and auth.api_key_auth == "token"
    if "client_secrets_url" in openai.model_fields_set and not mints_with_key:
        found.append(
            'openai.client_secrets_url: is used only with auth.mode = "api_key" and '
            'auth.api_key_auth = "token" (edgecap mints with the key there); remove it'
        )
    if "secret_expires_seconds" in openai.model_fields_set and header:
        found.append(
            "openai.secret_expires_seconds: no client secret is minted with auth.api_key_auth "
            '= "header" (the key itself opens each session); remove it'
        )
    host = url_host(openai.url)
    if header and host != OPENAI_HOST and not is_loopback_host(host):
        found.append(
            f'openai.url: auth.api_key_auth = "header" sends the OpenAI API key itself to '
            f"{host}, which is not {OPENAI_HOST}; make sure that server may have it"
        )
    return found


def _base_mismatch(auth: AuthConfig, provider: str) -> list[str]:
    """A token-service base whose last path part names the other provider."""
    if auth.mode != "token_service" or auth.token_service_url is None:
        return []
    last = urlsplit(auth.token_service_url).path.rstrip("/").rsplit("/", 1)[-1].lower()
    other = "assemblyai" if provider == "openai" else "openai"
    if last != other:
        return []
    return [
        f"auth.token_service_url: ends in /{other}, which looks like the token service's "
        f'{other} base, but streaming.provider is "{provider}"; it is usually .../v1/{provider}'
    ]


def provider_warnings(
    auth: AuthConfig,
    streaming: StreamingConfig,
    endpointing: EndpointingConfig,
    openai: OpenAIConfig,
) -> list[str]:
    """Harmless leftovers of the provider choice, one line each, starting with the key."""
    if streaming.provider == SYNC_PROVIDER:
        return sync_warnings(streaming, endpointing)
    found = _base_mismatch(auth, streaming.provider)
    if streaming.provider == "assemblyai":
        if "openai_api_key_file" in auth.model_fields_set:
            found.append(
                'auth.openai_api_key_file: is used only with streaming.provider = "openai" '
                '(it is "assemblyai"); it has no effect, remove it'
            )
        return found
    found += _assemblyai_leftovers(streaming, endpointing)[1]
    found += _openai_auth_warnings(auth, openai)
    if openai.manual_commit:
        for key in SERVER_VAD_KEYS:
            if key in openai.model_fields_set:
                found.append(
                    f'openai.{key}: is used only with openai.turn_detection = "server_vad" '
                    f'(it is "manual" with openai.model = "{openai.model}"); it has no effect, '
                    "remove it"
                )
    return found
