"""From the validated configuration to the Sync pipeline (`streaming.provider =
"assemblyai-sync"`): the protocol object for the way in, the transport, the segmenter's and
the pending spool's settings (no I/O until it runs)."""

from __future__ import annotations

from collections.abc import Callable

from edgecap.app.wiring import admission_settings
from edgecap.audio.level import level_limit
from edgecap.billing.gate import SpeechDetector
from edgecap.billing.ledger import Ledger
from edgecap.billing.store import LedgerStore
from edgecap.config import AudioConfig, AuthConfig, Config, Secrets, SyncConfig
from edgecap.providers.assemblyai.sync import SyncParams, SyncProtocol
from edgecap.sync.pending import PendingBounds
from edgecap.sync.runner import SyncPipeline
from edgecap.sync.segmenter import SegmentSettings
from edgecap.sync.store import PendingStore
from edgecap.sync.transport import SyncTransport
from edgecap.sync.types import Reporter, SyncSettings
from edgecap.turns.transcript import TranscriptTurn


def sync_protocol(audio: AudioConfig, auth: AuthConfig, sync: SyncConfig) -> SyncProtocol:
    """Where and how each utterance is POSTed: the API key itself to the Sync API, or the
    device credential (Bearer) to the token service / proxy, which adds the team key."""
    return SyncProtocol(
        sync.effective_url(auth.mode, auth.token_service_url),
        SyncParams(
            sample_rate=audio.sample_rate,
            timestamps=sync.timestamps,
            language_code=sync.language_code,
            prompt=sync.prompt,
            keyterms=tuple(sync.keyterms),
        ),
        model=sync.model,
        way_in="api_key" if auth.mode == "api_key" else "bearer",
    )


def sync_credential(auth: AuthConfig, secrets: Secrets) -> str:
    if auth.mode == "api_key":
        return secrets.api_key or ""
    return secrets.token_service_credential or ""


def sync_transport(cfg: Config, secrets: Secrets, timeout: float | None = None) -> SyncTransport:
    credential = sync_credential(cfg.auth, secrets)
    return SyncTransport(
        sync_protocol(cfg.audio, cfg.auth, cfg.sync),
        lambda: credential,
        timeout=cfg.sync.request_timeout_seconds if timeout is None else timeout,
    )


def sync_settings(cfg: Config) -> SyncSettings:
    s = cfg.sync
    return SyncSettings(
        device_id=cfg.device_id,
        model=s.model,
        sample_rate=cfg.audio.sample_rate,
        segments=SegmentSettings(
            gate=admission_settings(cfg).gate,
            max_ms=round(s.max_utterance_seconds * 1000),
            split_after_ms=round(s.split_after_seconds * 1000),
            quiet_limit=level_limit(cfg.session.vad_quiet_dbfs) if s.trim_silence else 0,
            tail_ms=s.trailing_silence_ms,
        ),
        bounds=PendingBounds(
            max_count=s.pending_max_utterances,
            max_bytes=round(s.pending_max_mb * 1_000_000),
            max_age_seconds=s.pending_max_age_hours * 3600,
            retry_max_seconds=s.retry_max_seconds,
        ),
        live_upload=s.live_upload,
    )


def sync_pipeline(
    cfg: Config,
    secrets: Secrets,
    *,
    detector: SpeechDetector,
    on_turn: Callable[[TranscriptTurn], None],
    reporter: Reporter,
    ledger: Ledger,
    ledger_store: LedgerStore,
    on_billing: Callable[[], None],
) -> SyncPipeline:
    return SyncPipeline(
        sync_settings(cfg),
        sync_transport(cfg, secrets),
        detector=detector,
        store=PendingStore(cfg.state_dir, reporter.set_condition),
        on_turn=on_turn,
        reporter=reporter,
        ledger=ledger,
        ledger_store=ledger_store,
        on_billing=on_billing,
    )


def sync_where(cfg: Config) -> str | None:
    """Where utterances go (for the start line), or None with a streaming provider."""
    if not cfg.sync_provider:
        return None
    return cfg.sync.effective_url(cfg.auth.mode, cfg.auth.token_service_url)
