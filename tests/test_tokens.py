"""Token client against the token-service simulator over real HTTP on loopback."""

from __future__ import annotations

import pytest

from edgecap.auth.tokens import TokenClient, TokenError, token_session_limit
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TokenMode, TokenServiceSimulator
from tests.harness import free_port

pytestmark = pytest.mark.integration

CRED = "team-cred-1234"


def client(
    url: str, authorization: str, *, timeout: float = 2.0, source: str = "token service"
) -> TokenClient:
    return TokenClient(
        url,
        authorization,
        source=source,
        expires_in_seconds=60,
        max_session_seconds=3600,
        timeout=timeout,
    )


async def test_fetch_returns_a_fresh_single_use_token_each_time() -> None:
    async with StreamingSimulator() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        c = client(ts.base_url + "/v3/token", f"Bearer {CRED}")
        try:
            first, second = await c.fetch(), await c.fetch()
        finally:
            await c.aclose()
        assert first.value != second.value
        assert first.expires_at > first.obtained_at
        params = ts.requests[0].params
        assert params["expires_in_seconds"] == "60"
        # the session cap plus a margin, as the server-side backstop
        assert params["max_session_duration_seconds"] == str(token_session_limit(3600)) == "3660"
        assert "value" not in repr(first)
        assert first.value not in repr(first)


@pytest.mark.parametrize(
    ("mode", "status", "fragment"),
    [
        ("401", 401, "credential is wrong or revoked"),
        ("403", 403, "may not use AssemblyAI"),
        ("429", 429, "rate limiting"),
        ("502", 502, "could not reach AssemblyAI"),
        ("503", 503, "no AssemblyAI key or capacity"),
        ("no_token", 200, "not a KeyPool-compatible"),
    ],
)
async def test_token_service_failures_become_one_actionable_line(
    mode: TokenMode, status: int, fragment: str
) -> None:
    async with (
        StreamingSimulator() as sim,
        TokenServiceSimulator(sim, credential=CRED, mode=mode) as ts,
    ):
        c = client(ts.base_url + "/v3/token", f"Bearer {CRED}")
        try:
            with pytest.raises(TokenError) as info:
                await c.fetch()
        finally:
            await c.aclose()
    assert info.value.status == status
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


async def test_wrong_credential_is_refused_and_not_echoed() -> None:
    async with StreamingSimulator() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        c = client(ts.base_url + "/v3/token", "Bearer wrong-credential-xyz")
        try:
            with pytest.raises(TokenError) as info:
                await c.fetch()
        finally:
            await c.aclose()
    assert info.value.status == 401
    assert "wrong-credential-xyz" not in str(info.value)


async def test_slow_token_service_times_out_with_a_hint() -> None:
    async with (
        StreamingSimulator() as sim,
        TokenServiceSimulator(sim, credential=CRED, mode="slow", slow_delay_seconds=5) as ts,
    ):
        c = client(ts.base_url + "/v3/token", f"Bearer {CRED}", timeout=0.3)
        try:
            with pytest.raises(TokenError) as info:
                await c.fetch()
        finally:
            await c.aclose()
    assert info.value.kind == "timeout"
    assert "request_timeout_seconds" in str(info.value)


async def test_unreachable_token_service_is_a_network_error() -> None:
    c = client(f"http://127.0.0.1:{free_port()}/v1/assemblyai/v3/token", f"Bearer {CRED}")
    try:
        with pytest.raises(TokenError) as info:
            await c.fetch()
    finally:
        await c.aclose()
    assert info.value.kind == "network"
    assert "cannot reach" in str(info.value)


async def test_api_key_mode_mints_at_the_streaming_host_with_the_raw_key() -> None:
    async with StreamingSimulator(api_key="aai-key-5678") as sim:
        good = client(sim.http_url + "/v3/token", "aai-key-5678", source="AssemblyAI")
        bad = client(sim.http_url + "/v3/token", "Bearer aai-key-5678", source="AssemblyAI")
        try:
            token = await good.fetch()
            with pytest.raises(TokenError) as info:
                await bad.fetch()  # the mint endpoint wants the raw key, no Bearer
        finally:
            await good.aclose()
            await bad.aclose()
    assert token.value
    assert info.value.status == 401
    assert "API key" in str(info.value)
