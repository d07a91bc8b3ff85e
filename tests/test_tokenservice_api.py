"""edgecap-tokens' HTTP API in process (Starlette's test client, a SQLite file, the provider
replaced by an httpx mock that records what reached it): the Sync forward, caps, every kind
of refusal as one JSON error that never reaches the provider, and OpenAI client secrets."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecap.tokenservice.app import build_app
from edgecap.tokenservice.config import LoadedService, parse_config
from edgecap.tokenservice.credentials import credential_hash
from edgecap.tokenservice.policy import utc_day
from edgecap.tokenservice.service import TokenService
from edgecap.tokenservice.store import Store
from edgecap.tokenservice.upstream import Upstream

pytestmark = pytest.mark.integration

KEY = "aai-key-0123456789"
OPENAI_KEY = "sk-openai-0123"
CREDENTIAL = "ect_device-credential-for-tests"


class Provider:
    """What reached the provider, and what it answers."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "provider says no"})
        if request.url.path == "/v3/token":
            return httpx.Response(200, json={"token": "tok", "expires_in_seconds": 60})
        if request.url.path == "/transcribe":
            return httpx.Response(200, json={"text": "hello", "audio_duration_ms": 2500})
        body = json.loads(request.content)
        return httpx.Response(200, json={"value": "ek_1", "expires_at": 1, "echo": body})


class Rig:
    def __init__(self, client: httpx.AsyncClient, provider: Provider, store: Store) -> None:
        self.client, self.provider, self.store = client, provider, store
        self.now = 1000.0

    async def token(self, credential: str = CREDENTIAL, **params: Any) -> httpx.Response:
        params.setdefault("expires_in_seconds", 60)
        return await self.client.get(
            "/v1/assemblyai/v3/token",
            params=params,
            headers={"Authorization": f"Bearer {credential}"},
        )


async def make_rig(tmp_path: Path, **sections: Any) -> AsyncIterator[Rig]:
    data: dict[str, Any] = {
        "assemblyai": {
            "token_url": "https://aai.test/v3/token",
            "sync_url": "https://sync.test/transcribe",
        },
        "openai": {"enabled": True, "client_secrets_url": "https://oai.test/v1/cs"},
        **sections,
    }
    loaded = LoadedService(parse_config(data), tmp_path / "t.toml", KEY, OPENAI_KEY)
    store = Store(str(tmp_path / "db.sqlite3"))
    store.create_schema()
    store.add_device("dev", credential_hash(CREDENTIAL), 0.0)
    provider = Provider()
    upstream = Upstream(5, httpx.AsyncClient(transport=httpx.MockTransport(provider)))
    holder: list[Rig] = []
    service = TokenService(loaded, store, upstream=upstream, clock=lambda: holder[0].now)
    transport = httpx.ASGITransport(app=build_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://tokens.test") as client:
        holder.append(Rig(client, provider, store))
        yield holder[0]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async for made in make_rig(tmp_path):
        yield made


async def test_a_token_is_minted_with_the_raw_key_and_capped_by_policy(rig: Rig) -> None:
    response = await rig.token(expires_in_seconds=900, max_session_duration_seconds=10_800)
    assert response.status_code == 200
    assert response.json() == {"token": "tok", "expires_in_seconds": 60}
    sent = rig.provider.requests[0]
    assert sent.headers["authorization"] == KEY  # raw, as AssemblyAI wants
    assert sent.url.params["expires_in_seconds"] == "600"
    assert sent.url.params["max_session_duration_seconds"] == "3600"
    usage = rig.store.list_devices(utc_day(time.time()))[0]
    assert usage.tokens_today == 1
    assert usage.estimated_seconds_today == 3600  # estimated from the token's maximum


async def test_the_sync_forward_passes_the_body_and_model_and_meters_audio(rig: Rig) -> None:
    files = {"audio": ("clip.wav", b"RIFF....WAVE", "audio/wav")}
    response = await rig.client.post(
        "/v1/assemblyai/sync",
        files=files,
        headers={"Authorization": f"Bearer {CREDENTIAL}", "X-AAI-Model": "universal-3-5-pro"},
    )
    assert response.status_code == 200
    assert response.json()["text"] == "hello"
    sent = rig.provider.requests[0]
    assert sent.url == "https://sync.test/transcribe"
    assert sent.headers["authorization"] == KEY
    assert sent.headers["x-aai-model"] == "universal-3-5-pro"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b"RIFF....WAVE" in sent.content
    row = rig.store.list_devices(utc_day(time.time()))[0]
    assert row.metered_seconds_today == 2.5


async def test_refusals_are_one_json_error_and_never_reach_the_provider(rig: Rig) -> None:
    cases = [
        (await rig.token("ect_wrong"), 401, "unauthorized"),
        (await rig.client.get("/v1/assemblyai/v3/token"), 401, "unauthorized"),
        (await rig.token(expires_in_seconds="-5"), 400, "bad_request"),
        (await rig.client.post("/v1/assemblyai/sync", content=b"x"), 401, "unauthorized"),
    ]
    rig.store.set_enabled("dev", False)
    cases.append((await rig.token(), 403, "device_disabled"))
    for response, status, code in cases:
        assert response.status_code == status
        assert response.json() == {"error": response.json()["error"], "code": code}
    assert rig.provider.requests == []


async def test_a_device_over_its_rate_gets_429_with_retry_after(rig: Rig) -> None:
    for _ in range(30):
        assert (await rig.token()).status_code == 200
    rig.now += 10
    refused = await rig.token()
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "50"
    assert len(rig.provider.requests) == 30
    rig.now += 50
    assert (await rig.token()).status_code == 200


async def test_a_spent_budget_is_refused_until_midnight(tmp_path: Path) -> None:
    limits = {"limits": {"device": {"daily_billed_seconds": 3600, "max_session_seconds": 3600}}}
    async for rig in make_rig(tmp_path, **limits):
        assert (await rig.token()).status_code == 200  # estimated at 3600 s: the budget is spent
        refused = await rig.token()
        assert refused.status_code == 429
        assert refused.json()["code"] == "budget_exhausted"
        assert 0 < int(refused.headers["Retry-After"]) <= 86_400
        assert len(rig.provider.requests) == 1


async def test_the_provider_refusing_the_key_is_a_502_for_the_device(rig: Rig) -> None:
    rig.provider.status = 401
    response = await rig.token()
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_refused_key"


async def test_openai_client_secrets_are_minted_with_the_key_and_capped(rig: Rig) -> None:
    body = {"expires_after": {"anchor": "created_at", "seconds": 7200}, "session": {"x": 1}}
    response = await rig.client.post(
        "/v1/openai/v1/realtime/client_secrets",
        json=body,
        headers={"Authorization": f"Bearer {CREDENTIAL}"},
    )
    assert response.status_code == 200
    sent = rig.provider.requests[0]
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert response.json()["echo"]["expires_after"]["seconds"] == 600
    assert response.json()["echo"]["session"] == {"x": 1}


async def test_health_readiness_and_metrics(rig: Rig) -> None:
    await rig.token()
    await rig.token("ect_wrong")
    assert (await rig.client.get("/healthz")).json() == {"status": "ok"}
    assert (await rig.client.get("/readyz")).status_code == 200
    text = (await rig.client.get("/metrics")).text
    assert 'edgecap_tokens_requests_total{outcome="ok",route="assemblyai_token"} 1.0' in text
    assert 'outcome="unauthorized",route="assemblyai_token"} 1.0' in text
    assert 'edgecap_tokens_billed_seconds_total{device="dev",kind="estimated"} 3600.0' in text
    assert "edgecap_tokens_upstream_seconds_bucket" in text
    assert "edgecap_tokens_sessions_open 0.0" in text


async def test_a_failing_database_is_a_503_json_error_and_nothing_reaches_the_provider(
    rig: Rig,
) -> None:
    with rig.store.engine.begin() as conn:  # the database loses its tables under the service
        conn.exec_driver_sql("DROP TABLE usage")
        conn.exec_driver_sql("DROP TABLE devices")
    response = await rig.token()
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "5"
    ready = await rig.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "database unavailable"
    assert rig.provider.requests == []
