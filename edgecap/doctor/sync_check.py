"""The Sync API check (`streaming.provider = "assemblyai-sync"`, in place of the token and
streaming checks): POST half a second of silence the way the daemon posts an utterance (the
same URL, credential, headers and multipart body) and read the answer. It bills 0.5 s."""

from __future__ import annotations

import time

from edgecap.app.wiring_sync import sync_credential, sync_protocol
from edgecap.config import SyncConfig
from edgecap.doctor.context import DoctorContext
from edgecap.doctor.explain import network_advice, network_kind
from edgecap.doctor.result import CheckResult, failed, passed, skipped
from edgecap.providers.assemblyai.sync import SyncProtocolError, SyncRefused
from edgecap.sync.transport import SyncNetworkError, SyncTransport

CHECK = "sync"
PROBE_SECONDS = 0.5


async def check_sync(ctx: DoctorContext) -> CheckResult:
    cfg = ctx.cfg
    if cfg.audio is None or cfg.auth is None:
        return skipped(
            CHECK,
            cfg.unavailable(
                *(n for n, s in (("audio", cfg.audio), ("auth", cfg.auth)) if s is None)
            ),
        )
    sync = cfg.sync or SyncConfig()
    credential = sync_credential(cfg.auth, cfg.secrets)
    what = "AssemblyAI API key" if cfg.auth.mode == "api_key" else "token-service credential"
    if not credential:
        return skipped(CHECK, f"not run: no {what} was found (see config)")
    protocol = sync_protocol(cfg.audio, cfg.auth, sync)
    timeout = ctx.options.network_timeout(sync.request_timeout_seconds)
    transport = SyncTransport(protocol, lambda: credential, timeout=timeout)
    clip = bytes(round(cfg.audio.sample_rate * PROBE_SECONDS) * 2)
    url_key = (
        "sync.url"
        if sync.url
        else ("auth.token_service_url" if cfg.auth.mode != "api_key" else "sync.url")
    )
    data: dict[str, object] = {
        "url": protocol.url,
        "model": protocol.model,
        "way_in": protocol.way_in,
    }
    started = time.monotonic()
    try:
        result = await transport.send(clip)
    except SyncRefused as exc:
        c = exc.failure.classified
        return failed(
            CHECK, f"{protocol.url} refused the clip: {c.line()}", c.hint, code=c.code, **data
        )
    except SyncNetworkError as exc:
        advice = network_advice(network_kind(exc), "Sync API", protocol.url, url_key)
        return failed(CHECK, f"{advice.cause}: {exc}", advice.fix, **data)
    except SyncProtocolError as exc:
        return failed(
            CHECK,
            f"{protocol.url} answered 200 but not with a transcript ({exc})",
            f"{url_key} points at something that is not the Sync API (or a token service "
            "without POST .../sync)",
            **data,
        )
    finally:
        await transport.aclose()
    took = round((time.monotonic() - started) * 1000)
    return passed(
        CHECK,
        f"{protocol.url} transcribed {PROBE_SECONDS} s of silence in {took} ms (model "
        f"{protocol.model}, session {result.session_id or 'not given'}; billed about "
        f"{PROBE_SECONDS} s)",
        answer_ms=took,
        session_id=result.session_id,
        **data,
    )
