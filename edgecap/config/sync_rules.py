"""Rules of `streaming.provider = "assemblyai-sync"` that span sections (pure functions):
`[sync]` is used only by it, `[openai]` never with it, the proxy mode needs to know where
the Sync path is, and the streaming model keys have no effect (a warning)."""

from __future__ import annotations

from pydantic import BaseModel

from edgecap.config.auth import AuthConfig
from edgecap.config.openai import OpenAIConfig
from edgecap.config.session import SessionConfig
from edgecap.config.streaming import EndpointingConfig, StreamingConfig
from edgecap.config.sync import SYNC_SAMPLE_RATES, SyncConfig

SYNC_PROVIDER = "assemblyai-sync"
_SYNC = f'streaming.provider = "{SYNC_PROVIDER}"'
_STREAMING_ONLY = ("speech_model", "format_turns", "keyterms", "prompt", "speaker_labels")


def _set(section: BaseModel) -> list[str]:
    return sorted(section.model_fields_set)


def sync_problems(
    *,
    provider: str,
    audio_rate: int,
    auth: AuthConfig,
    session: SessionConfig,
    openai: OpenAIConfig,
    sync: SyncConfig,
) -> list[tuple[str, str]]:
    """(key, problem) for the Sync provider choice; empty when fine."""
    if provider != SYNC_PROVIDER:
        return [
            (
                f"sync.{key}",
                f'set, but streaming.provider is "{provider}", which does not use [sync]; set '
                f"{_SYNC} or remove sync.{key}",
            )
            for key in _set(sync)
        ]
    found = [
        (
            f"openai.{key}",
            f"set, but {_SYNC} does not use [openai]; remove openai.{key}",
        )
        for key in _set(openai)
    ]
    if audio_rate not in SYNC_SAMPLE_RATES:
        found.append(
            (
                "audio.sample_rate",
                f"the Sync API takes {', '.join(map(str, SYNC_SAMPLE_RATES))} Hz (got "
                f"{audio_rate}); use 16000",
            )
        )
    if auth.mode == "proxy" and sync.url is None and auth.token_service_url is None:
        found.append(
            (
                "sync.url",
                'required with auth.mode = "proxy" and no auth.token_service_url: the '
                "proxy's Sync path, e.g. https://keypool.example.com/v1/assemblyai/sync",
            )
        )
    if session.gate != "voice":
        found.append(
            (
                "session.gate",
                f'must be "voice" with {_SYNC} (got "{session.gate}"): the local detector '
                "cuts the utterances that are sent",
            )
        )
    return found


def sync_warnings(streaming: StreamingConfig, endpointing: EndpointingConfig) -> list[str]:
    """AssemblyAI streaming keys that have no effect with the Sync API."""
    keys = [f"streaming.{k}" for k in _STREAMING_ONLY if k in streaming.model_fields_set]
    keys += [f"endpointing.{k}" for k in _set(endpointing)]
    if not keys:
        return []
    return [
        f"{', '.join(keys)}: streaming settings, no effect with {_SYNC} (its options are in "
        "[sync]: model, language_code, prompt, keyterms)"
    ]
