"""From the validated configuration to the runtime settings of each part (no I/O)."""

from __future__ import annotations

from collections.abc import Callable

from edgecap.app.choices import control_choices
from edgecap.app.wiring_openai import openai_credential_source, openai_session_settings
from edgecap.audio.capture import CaptureSettings
from edgecap.audio.level import level_limit
from edgecap.auth.tokens import CredentialSource, StaticCredential, TokenClient
from edgecap.billing.admission import AdmissionSettings
from edgecap.billing.gate import GateMode, GateSettings
from edgecap.billing.ledger import Ledger
from edgecap.config import (
    AudioConfig,
    AuthConfig,
    Config,
    EndpointingConfig,
    LoadedConfig,
    MqttConfig,
    OpenAIConfig,
    Secrets,
    SessionConfig,
    StreamingConfig,
)
from edgecap.engine.policy import RetrySettings
from edgecap.engine.types import SessionSettings
from edgecap.mqtt.settings import MqttSettings, ServiceSettings, TlsSettings
from edgecap.mqtt.spool import SpoolBounds
from edgecap.mqtt.topics import Topics
from edgecap.providers.assemblyai.protocol import AssemblyAIProvider, AuthForm
from edgecap.providers.assemblyai.url import StreamParams


def secrets_of(loaded: LoadedConfig) -> tuple[str, ...]:
    """Every secret value, for redaction."""
    return loaded.secrets.values


def stream_params(
    audio: AudioConfig,
    streaming: StreamingConfig,
    endpointing: EndpointingConfig,
    *,
    inactivity_timeout: int | None = None,
) -> StreamParams:
    """The session's query parameters, as configured: what the model takes, resolved per
    model (None: not sent, the model's own default applies)."""
    model = streaming.speech_model
    min_silence, max_silence = endpointing.effective_turn_silence(model)
    return StreamParams(
        sample_rate=audio.sample_rate,
        speech_model=model,
        format_turns=streaming.effective_format_turns,
        end_of_turn_confidence_threshold=endpointing.effective_confidence_threshold(model),
        min_turn_silence=min_silence,
        max_turn_silence=max_silence,
        inactivity_timeout=inactivity_timeout,
        keyterms_prompt=tuple(streaming.keyterms),
        prompt=streaming.prompt,
        language_detection=True if streaming.language_detection else None,
        language_code=streaming.language_code,
        language_codes=tuple(streaming.effective_language_codes or ()),
        mode=streaming.mode,
        vad_threshold=streaming.vad_threshold,
        voice_focus=streaming.voice_focus,
        speaker_labels=True if streaming.speaker_labels else None,
        max_speakers=streaming.max_speakers,
    )


def auth_form(auth: AuthConfig) -> AuthForm:
    """How the session's upgrade request carries the credential."""
    if auth.mode == "proxy":
        return "proxy_header" if auth.proxy_auth == "header" else "proxy_subprotocol"
    if auth.mode == "api_key" and auth.api_key_auth == "header":
        return "api_key_header"
    return "token_query"


def session_settings_for(
    device_id: str,
    *,
    audio: AudioConfig,
    auth: AuthConfig,
    streaming: StreamingConfig,
    endpointing: EndpointingConfig,
    session: SessionConfig,
    openai: OpenAIConfig | None = None,
    timeout: Callable[[float], float] = float,
) -> SessionSettings:
    """One session's settings from the sections (the daemon and the doctor; `timeout`
    maps each configured network wait, e.g. to the doctor's shorter one)."""
    if streaming.provider == "openai":
        return openai_session_settings(
            device_id,
            audio=audio,
            streaming=streaming,
            openai=openai or OpenAIConfig(),
            session=session,
            timeout=timeout,
        )
    params = stream_params(
        audio, streaming, endpointing, inactivity_timeout=session.inactivity_timeout_seconds or None
    )
    return SessionSettings(
        url=streaming.url,
        params=params,
        device_id=device_id,
        connect_timeout=timeout(streaming.connect_timeout_seconds),
        begin_timeout=timeout(streaming.begin_timeout_seconds),
        terminate_timeout=timeout(streaming.terminate_timeout_seconds),
        max_session_seconds=session.max_session_seconds,
        catchup_rate=streaming.catchup_rate,
        preroll_burst_seconds=streaming.preroll_burst_ms / 1000,
        provider=AssemblyAIProvider(streaming.url, params, auth_form(auth)),
    )


def capture_settings(cfg: Config) -> CaptureSettings:
    return capture_settings_for(cfg.audio, cfg.session)


def capture_settings_for(a: AudioConfig, session: SessionConfig | None) -> CaptureSettings:
    """The capture child's settings (the doctor passes no session: every frame is sent,
    none held back as quiet)."""
    voice = session is not None and session.gate == "voice"
    return CaptureSettings(
        device=a.device,
        sample_rate=a.sample_rate,
        frame_ms=a.frame_ms,
        periods=a.periods,
        reopen_min_seconds=a.reopen_min_seconds,
        reopen_max_seconds=a.reopen_max_seconds,
        quiet_limit=level_limit(session.vad_quiet_dbfs) if session is not None and voice else 0,
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
    return session_settings_for(
        cfg.device_id,
        audio=cfg.audio,
        auth=cfg.auth,
        streaming=cfg.streaming,
        endpointing=cfg.endpointing,
        session=cfg.session,
        openai=cfg.openai,
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
        ),
        max_sessions_per_minute=s.max_sessions_per_minute,
    )


def configure_ledger(ledger: Ledger, cfg: Config) -> Ledger:
    """Apply the budget and the day's reset time (at start and on reload)."""
    ledger.reset_at = cfg.session.reset_time
    ledger.budget_seconds = cfg.budget_seconds
    ledger.price_per_hour = cfg.price_per_hour
    ledger.currency = cfg.pricing.currency
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


def credential_source(
    auth: AuthConfig,
    session: SessionConfig,
    secrets: Secrets,
    *,
    openai: OpenAIConfig | None = None,
    timeout: float | None = None,
) -> CredentialSource:
    """What opens each session: a token client that mints single-use tokens, or (proxy,
    API key in the header) the credential itself; with `openai` (the provider is OpenAI)
    an ephemeral client secret reused until it nears expiry."""
    if openai is not None:
        return openai_credential_source(auth, openai, secrets, timeout=timeout)
    if auth.mints_tokens:
        return token_client(auth, session, secrets, timeout=timeout)
    if auth.mode == "proxy":
        return StaticCredential(secrets.token_service_credential or "", "KeyPool proxy")
    return StaticCredential(secrets.api_key or "", "AssemblyAI API key")


def mqtt_settings(loaded: LoadedConfig, topics: Topics) -> MqttSettings:
    cfg = loaded.config
    m = cfg.mqtt
    tls = tls_settings(m)
    return MqttSettings(
        host=m.host,
        port=m.port,
        client_id=cfg.mqtt_client_id,
        topics=topics,
        username=m.username,
        password=loaded.secrets.mqtt_password,
        keepalive=m.keepalive_seconds,
        reconnect_min_seconds=m.reconnect_min_seconds,
        reconnect_max_seconds=m.reconnect_max_seconds,
        protocol=m.protocol,
        tls=tls,
    )


def tls_settings(m: MqttConfig) -> TlsSettings | None:
    """The broker's TLS as configured (None: plain MQTT); the daemon and the doctor."""
    if not m.tls:
        return None
    return TlsSettings(
        ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file, insecure=m.tls_insecure
    )


def mqtt_service_settings(loaded: LoadedConfig) -> ServiceSettings:
    """What the MQTT service publishes, where, and its spool."""
    cfg = loaded.config
    m = cfg.mqtt
    topics = Topics(m.prefix, cfg.device_id, m.discovery_prefix)
    return ServiceSettings(
        device_id=cfg.device_id,
        connection=mqtt_settings(loaded, topics),
        state_dir=cfg.state_dir,
        spool=SpoolBounds(cfg.spool.max_turns, cfg.spool.max_age_hours * 3600.0),
        stats_interval_seconds=m.stats_interval_seconds,
        partials=m.partials,
        hermes=m.hermes,
        discovery=m.discovery,
        currency=cfg.pricing.currency,
        controls=control_choices(cfg),
    )
