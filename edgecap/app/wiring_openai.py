"""From the validated configuration to an OpenAI Realtime transcription session and the
secret that opens it (no I/O; `app/wiring.py` picks it when `streaming.provider =
"openai"`)."""

from __future__ import annotations

from collections.abc import Callable

from edgecap.auth.client_secrets import CLIENT_SECRETS_PATH, ClientSecretClient, ReusedSecret
from edgecap.auth.tokens import CredentialSource, StaticCredential
from edgecap.config import (
    AudioConfig,
    AuthConfig,
    OpenAIConfig,
    Secrets,
    SessionConfig,
    StreamingConfig,
)
from edgecap.engine.types import SessionSettings
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.providers.openai.params import OpenAIParams, ServerVad, session_config
from edgecap.providers.openai.protocol import OpenAIRealtimeProvider


def openai_params(o: OpenAIConfig, capture_rate: int = 24000) -> OpenAIParams:
    vad = (
        ServerVad(o.vad_threshold, o.prefix_padding_ms, o.silence_duration_ms)
        if o.effective_turn_detection == "server_vad"
        else None
    )
    return OpenAIParams(
        url=o.url,
        model=o.model,
        language=o.language,
        prompt=o.prompt,
        noise_reduction=o.effective_noise_reduction,
        turn_detection=vad,
        input_rate=capture_rate,
    )


def openai_session_settings(
    device_id: str,
    *,
    audio: AudioConfig,
    streaming: StreamingConfig,
    openai: OpenAIConfig,
    session: SessionConfig,
    timeout: Callable[[float], float] = float,
) -> SessionSettings:
    params = openai_params(openai, audio.sample_rate)
    return SessionSettings(
        url=openai.url,
        # (the engine reads the provider; these only describe the audio and the model)
        params=StreamParams(audio.sample_rate, openai.model, None, None, None, None),
        device_id=device_id,
        connect_timeout=timeout(streaming.connect_timeout_seconds),
        begin_timeout=timeout(streaming.begin_timeout_seconds),
        terminate_timeout=timeout(streaming.terminate_timeout_seconds),
        max_session_seconds=session.max_session_seconds,
        catchup_rate=streaming.catchup_rate,
        preroll_burst_seconds=streaming.preroll_burst_ms / 1000,
        provider=OpenAIRealtimeProvider(params),
    )


def openai_credential_source(
    auth: AuthConfig, openai: OpenAIConfig, secrets: Secrets, *, timeout: float | None = None
) -> CredentialSource:
    """An ephemeral client secret, reused until it nears expiry, minted by the token
    service (no key on the device) or with the OpenAI key; or the key itself in the
    upgrade's header (`auth.api_key_auth = "header"`, a server-side client)."""
    wait = auth.request_timeout_seconds if timeout is None else timeout
    session = session_config(openai_params(openai))
    if auth.mode == "api_key" and auth.api_key_auth == "header":
        return StaticCredential(secrets.openai_api_key or "", "OpenAI API key")
    if auth.mode == "api_key":
        url, authorization, source = (
            openai.client_secrets_url,
            f"Bearer {secrets.openai_api_key or ''}",
            "OpenAI",
        )
    else:
        url = (auth.token_service_url or "").rstrip("/") + CLIENT_SECRETS_PATH
        authorization = f"Bearer {secrets.token_service_credential or ''}"
        source = "token service"
    client = ClientSecretClient(
        url,
        authorization,
        source=source,
        session=session,
        expires_in_seconds=openai.secret_expires_seconds,
        timeout=wait,
    )
    return ReusedSecret(client)
