"""OpenAI ephemeral client secrets, minted through a KeyPool-style token service (the OpenAI
Realtime simulator's), reused until they near expiry, and refusals explained in one line."""

from __future__ import annotations

import time

import pytest

from edgecap.auth.client_secrets import CLIENT_SECRETS_PATH, ClientSecretClient, ReusedSecret
from edgecap.auth.tokens import TokenError
from edgecap.sim.openai import OpenAIRealtimeSimulator

pytestmark = pytest.mark.integration

TEAM = "nxkp-team-openai-secrets"
SESSION = {
    "type": "transcription",
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}},
}


def client(
    sim: OpenAIRealtimeSimulator, credential: str = TEAM, timeout: float = 2.0
) -> ClientSecretClient:
    return ClientSecretClient(
        sim.token_service_url + CLIENT_SECRETS_PATH,
        f"Bearer {credential}",
        source="token service",
        session=SESSION,
        expires_in_seconds=600,
        timeout=timeout,
    )


async def test_a_secret_is_minted_through_the_token_service_and_opens_sessions() -> None:
    async with OpenAIRealtimeSimulator(credential=TEAM) as sim:
        source = client(sim)
        try:
            before = time.monotonic()
            secret = await source.fetch()
        finally:
            await source.aclose()
        assert secret.value.startswith("ek_")
        assert 590 <= secret.expires_at - before <= 601  # the lifetime asked for
        request = sim.secret_requests[0]
        assert request.keypool
        assert request.body["session"]["type"] == "transcription"


async def test_one_secret_serves_every_reconnect_until_it_nears_expiry() -> None:
    async with OpenAIRealtimeSimulator(credential=TEAM) as sim:
        now = [0.0]
        reused = ReusedSecret(client(sim), clock=lambda: now[0] + time.monotonic())
        try:
            first = await reused.fetch()
            again = await reused.fetch()
            assert again.value == first.value
            assert len(sim.secret_requests) == 1  # no round trip for a reconnect
            now[0] = 500.0  # past 3/4 of its 600 s
            renewed = await reused.fetch()
        finally:
            await reused.aclose()
        assert renewed.value != first.value
        assert len(sim.secret_requests) == 2


@pytest.mark.parametrize(
    ("mode", "status", "words"),
    [("401", 401, "team credential"), ("429", 429, "rate limiting"), ("503", 503, "no OpenAI key")],
)
async def test_a_refusal_is_one_line_with_its_cause(mode: str, status: int, words: str) -> None:
    async with OpenAIRealtimeSimulator(credential=TEAM) as sim:
        sim.secrets_mode = mode
        source = client(sim)
        try:
            with pytest.raises(TokenError) as raised:
                await source.fetch()
        finally:
            await source.aclose()
    assert raised.value.status == status
    assert words in str(raised.value)
    assert "AssemblyAI" not in str(raised.value)
    assert "\n" not in str(raised.value)


async def test_a_hanging_token_service_is_a_timeout_not_a_freeze() -> None:
    async with OpenAIRealtimeSimulator(credential=TEAM) as sim:
        sim.secrets_mode = "hang"
        source = client(sim, timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(TokenError) as raised:
                await source.fetch()
        finally:
            await source.aclose()
    assert raised.value.kind == "timeout"
    assert time.monotonic() - started < 2.0
