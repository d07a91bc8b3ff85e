"""From the validated configuration to the runtime settings of each part (no I/O)."""

from __future__ import annotations

from edgecap.audio.capture import CaptureSettings
from edgecap.audio.level import level_limit
from edgecap.auth.tokens import TokenClient
from edgecap.billing.admission import AdmissionSettings
from edgecap.billing.gate import GateMode, GateSettings
from edgecap.billing.ledger import Ledger
from edgecap.config import (
    AudioConfig,
    AuthConfig,
    Config,
    EndpointingConfig,
    LoadedConfig,
    Secrets,
    SessionConfig,
    StreamingConfig,
)
from edgecap.engine.policy import RetrySettings
from edgecap.engine.types import SessionSettings
from edgecap.providers.assemblyai.url import StreamParams


def secrets_of(loaded: LoadedConfig) -> tuple[str, ...]:
    """Every secret value, for redaction."""
    s = loaded.secrets
    return tuple(x for x in (s.token_service_credential, s.api_key, s.mqtt_password) if x)


def stream_params(
    audio: AudioConfig,
    streaming: StreamingConfig,
    endpointing: EndpointingConfig,
    *,
    inactivity_timeout: int | None = None,
) -> StreamParams:
    """The session's query parameters, as configured (every one sent explicitly)."""
    return StreamParams(
        inactivity_timeout=inactivity_timeout,
        sample_rate=audio.sample_rate,
        speech_model=streaming.speech_model,
        format_turns=streaming.format_turns,
        end_of_turn_confidence_threshold=endpointing.end_of_turn_confidence_threshold,
        min_turn_silence=endpointing.min_turn_silence,
        max_turn_silence=endpointing.max_turn_silence,
    )


def capture_settings(cfg: Config) -> CaptureSettings:
    a = cfg.audio
    return CaptureSettings(
        device=a.device,
        sample_rate=a.sample_rate,
        frame_ms=a.frame_ms,
        periods=a.periods,
        reopen_min_seconds=a.reopen_min_seconds,
        reopen_max_seconds=a.reopen_max_seconds,
        quiet_limit=level_limit(cfg.session.vad_quiet_dbfs) if cfg.session.gate == "voice" else 0,
    )


def retry_settings(cfg: Config) -> RetrySettings:
    s = cfg.streaming
    return RetrySettings(
        max_seconds=s.reconnect_max_seconds,
        stable_seconds=s.stable_session_seconds,
        quick_seconds=s.quick_failure_seconds,
        quick_count=s.quick_failure_count,
        cooldown_seconds=s.cooldown_seconds,
    )


def session_settings(cfg: Config) -> SessionSettings:
    return SessionSettings(
        url=cfg.streaming.url,
        params=stream_params(
            cfg.audio,
            cfg.streaming,
            cfg.endpointing,
            inactivity_timeout=cfg.session.inactivity_timeout_seconds or None,
        ),
        device_id=cfg.device_id,
        connect_timeout=cfg.streaming.connect_timeout_seconds,
        begin_timeout=cfg.streaming.begin_timeout_seconds,
        terminate_timeout=cfg.streaming.terminate_timeout_seconds,
        max_session_seconds=cfg.session.max_session_seconds,
        catchup_rate=cfg.streaming.catchup_rate,
    )


def admission_settings(cfg: Config) -> AdmissionSettings:
    s = cfg.session
    return AdmissionSettings(
        GateSettings(
            mode=GateMode(s.gate),
            frame_ms=cfg.audio.frame_ms,
            hangover_ms=s.vad_hangover_ms,
            idle_close_seconds=s.idle_close_seconds,
            preroll_ms=s.preroll_ms,
        )
    )


def configure_ledger(ledger: Ledger, cfg: Config) -> Ledger:
    """Apply the budget and the day's reset time (at start and on reload)."""
    ledger.reset_at = cfg.session.reset_time
    ledger.budget_seconds = cfg.session.budget_seconds
    return ledger


def token_client(
    auth: AuthConfig, session: SessionConfig, secrets: Secrets, *, timeout: float | None = None
) -> TokenClient:
    """The token client the configuration asks for (`timeout`: the doctor's, if shorter)."""
    wait = auth.request_timeout_seconds if timeout is None else timeout
    if auth.mode == "api_key":
        return TokenClient(
            auth.api_token_url,
            secrets.api_key or "",
            source="AssemblyAI",
            expires_in_seconds=auth.token_expires_in_seconds,
            max_session_seconds=session.max_session_seconds,
            timeout=wait,
        )
    return TokenClient(
        (auth.token_service_url or "").rstrip("/") + "/v3/token",
        f"Bearer {secrets.token_service_credential or ''}",
        source="token service",
        expires_in_seconds=auth.token_expires_in_seconds,
        max_session_seconds=session.max_session_seconds,
        timeout=wait,
    )


def make_token_client(config: Config, secrets: Secrets) -> TokenClient:
    return token_client(config.auth, config.session, secrets)
