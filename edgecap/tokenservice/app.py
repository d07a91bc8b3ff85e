"""The HTTP API (Starlette): token minting, the Sync forward, OpenAI client secrets, the
WebSocket proxy's route, health, readiness and metrics.

Every refusal is one JSON object `{"error": ..., "code": ...}` (with `Retry-After` on a
429) and is decided before anything is sent to the provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from edgecap.tokenservice.credentials import bearer
from edgecap.tokenservice.policy import Refusal, capped_session_seconds
from edgecap.tokenservice.proxy import proxy_endpoint
from edgecap.tokenservice.responses import answer_response, refusal_response
from edgecap.tokenservice.service import Admitted, TokenService
from edgecap.tokenservice.upstream import Answer

TOKEN_ROUTE = "/v1/assemblyai/v3/token"  # noqa: S105 - a URL path
WS_ROUTE = "/v1/assemblyai/v3/ws"
SYNC_ROUTE = "/v1/assemblyai/sync"
OPENAI_ROUTE = "/v1/openai/v1/realtime/client_secrets"
DISABLED = Refusal(404, "provider_disabled", "this provider is not enabled on the token service")


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 6:
        raise ValueError(f"{name} must be a whole number of seconds")
    return int(raw)


def _service(request: Request) -> TokenService:
    service: TokenService = request.app.state.service
    return service


async def _admit(request: Request, route: str) -> tuple[TokenService, Admitted | JSONResponse]:
    service = _service(request)
    result = await service.admit(bearer(request.headers.get("authorization")), route)
    if isinstance(result, Refusal):
        service.audit(route, result.code, result.status)
        return service, refusal_response(result)
    return service, result


async def token(request: Request) -> Response:
    route = "assemblyai_token"
    service = _service(request)
    aai = service.config.assemblyai
    if not aai.enabled:
        service.audit(route, DISABLED.code, 404)
        return refusal_response(DISABLED)
    try:
        expires = _int_param(request, "expires_in_seconds")
        wanted = _int_param(request, "max_session_duration_seconds")
    except ValueError as exc:
        service.audit(route, "bad_request", 400)
        return refusal_response(Refusal(400, "bad_request", str(exc)))
    service, admitted = await _admit(request, route)
    if not isinstance(admitted, Admitted):
        return admitted
    limit = service.config.limits.device.max_token_expires_seconds
    params = {
        "expires_in_seconds": max(1, min(expires or 60, limit)),
        "max_session_duration_seconds": capped_session_seconds(
            wanted, service.limits, admitted.usage
        ),
    }
    assert service.loaded.assemblyai_key is not None
    answer = await service.upstream.send(
        "GET",
        aai.token_url,
        headers={"Authorization": service.loaded.assemblyai_key},
        params=params,
    )
    service.metrics.upstream_latency.labels(route).observe(answer.seconds)
    minted = answer.status == 200
    estimated = float(params["max_session_duration_seconds"]) if minted else 0.0
    await service.record(admitted, tokens=int(minted), estimated=estimated)
    service.audit(
        route,
        "ok" if minted else answer.failure or "upstream",
        answer.status,
        device=admitted.device.name,
        max_session_duration_seconds=params["max_session_duration_seconds"],
        upstream_ms=round(answer.seconds * 1000, 1),
    )
    return answer_response(answer)


async def sync(request: Request) -> Response:
    route = "assemblyai_sync"
    service = _service(request)
    aai = service.config.assemblyai
    if not aai.enabled:
        service.audit(route, DISABLED.code, 404)
        return refusal_response(DISABLED)
    service, admitted = await _admit(request, route)
    if not isinstance(admitted, Admitted):
        return admitted
    body = await _bounded_body(request, aai.max_sync_body_bytes)
    if body is None:
        refusal = Refusal(413, "bad_request", f"body over {aai.max_sync_body_bytes} bytes")
        service.audit(route, refusal.code, 413, device=admitted.device.name)
        return refusal_response(refusal)
    headers = {"Authorization": service.loaded.assemblyai_key or ""}
    for name in ("content-type", "x-aai-model"):
        if name in request.headers:
            headers[name] = request.headers[name]
    answer = await service.upstream.send("POST", aai.sync_url, headers=headers, content=body)
    service.metrics.upstream_latency.labels(route).observe(answer.seconds)
    metered = _audio_seconds(answer) if answer.status == 200 else 0.0
    await service.record(admitted, metered=metered)
    service.audit(
        route,
        "ok" if answer.status == 200 else answer.failure or "upstream",
        answer.status,
        device=admitted.device.name,
        billed_seconds=round(metered, 3),
        upstream_ms=round(answer.seconds * 1000, 1),
    )
    return answer_response(answer)


def _audio_seconds(answer: Answer) -> float:
    body = answer.json()
    value = body.get("audio_duration_ms") if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        return 0.0
    return float(value) / 1000.0


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def openai_secret(request: Request) -> Response:
    route = "openai_client_secret"
    service = _service(request)
    section = service.config.openai
    if not section.enabled:
        service.audit(route, DISABLED.code, 404)
        return refusal_response(DISABLED)
    service, admitted = await _admit(request, route)
    if not isinstance(admitted, Admitted):
        return admitted
    body = await _bounded_body(request, 64 * 1024)
    try:
        payload: Any = json.loads(body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError
    except ValueError:
        service.audit(route, "bad_request", 400, device=admitted.device.name)
        return refusal_response(Refusal(400, "bad_request", "the body must be a JSON object"))
    after = payload.get("expires_after")
    seconds = after.get("seconds") if isinstance(after, dict) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        seconds = section.max_expires_seconds
    payload["expires_after"] = {
        "anchor": "created_at",
        "seconds": max(10, min(seconds, section.max_expires_seconds)),
    }
    headers = {
        "Authorization": f"Bearer {service.loaded.openai_key or ''}",
        "Content-Type": "application/json",
    }
    answer = await service.upstream.send(
        "POST",
        section.client_secrets_url,
        headers=headers,
        content=json.dumps(payload).encode(),
        provider="OpenAI",
    )
    service.metrics.upstream_latency.labels(route).observe(answer.seconds)
    await service.record(admitted, tokens=int(answer.status == 200))
    outcome = "ok" if answer.status == 200 else answer.failure or "upstream"
    service.audit(route, outcome, answer.status, device=admitted.device.name)
    return answer_response(answer)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    service = _service(request)
    if service.draining:
        return JSONResponse({"status": "draining"}, 503)
    try:
        await asyncio.wait_for(asyncio.to_thread(service.store.ping), 5)
    except Exception as exc:
        return JSONResponse({"status": "database unavailable", "error": type(exc).__name__}, 503)
    return JSONResponse({"status": "ready", "sessions_open": len(service.sessions.open)})


async def metrics(request: Request) -> Response:
    service = _service(request)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def build_app(service: TokenService) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.upstream.aclose()
        await asyncio.to_thread(service.store.close)

    app = Starlette(
        routes=[
            Route(TOKEN_ROUTE, token, methods=["GET"]),
            Route(SYNC_ROUTE, sync, methods=["POST"]),
            Route(OPENAI_ROUTE, openai_secret, methods=["POST"]),
            WebSocketRoute(WS_ROUTE, proxy_endpoint),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
