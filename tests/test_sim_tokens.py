"""The KeyPool-compatible token service simulator: credential check and every mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect

from edgecap.sim import StreamingSimulator, TokenServiceSimulator
from tests.sim_helpers import API_KEY, recv_json, ws_url

pytestmark = pytest.mark.integration

CREDENTIAL = "team-credential"
GOOD_AUTH = {"Authorization": f"Bearer {CREDENTIAL}"}
PARAMS = {"expires_in_seconds": 60, "max_session_duration_seconds": 600}


@pytest.fixture
async def servers() -> AsyncIterator[tuple[StreamingSimulator, TokenServiceSimulator]]:
    async with (
        StreamingSimulator(api_key=API_KEY) as streaming,
        TokenServiceSimulator(streaming, credential=CREDENTIAL) as tokens,
    ):
        tokens.wait_timeout = 5.0
        yield streaming, tokens


@pytest.fixture
async def tsim(
    servers: tuple[StreamingSimulator, TokenServiceSimulator],
) -> TokenServiceSimulator:
    return servers[1]


async def get_token(
    tsim: TokenServiceSimulator,
    headers: dict[str, str] | None = None,
    params: dict[str, int] | None = None,
    url: str | None = None,
    client_timeout: float = 5.0,
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=client_timeout) as client:
        return await client.get(
            url or tsim.base_url + "/v3/token",
            params=PARAMS if params is None else params,
            headers=GOOD_AUTH if headers is None else headers,
        )


async def test_ok_mints_a_token_that_opens_one_session(
    servers: tuple[StreamingSimulator, TokenServiceSimulator],
) -> None:
    streaming, tsim = servers
    assert tsim.base_url == f"http://127.0.0.1:{tsim.port}/v1/assemblyai"

    response = await get_token(tsim)

    assert response.status_code == 200
    assert response.headers["Server"] == "edgecap-simulator"
    body = response.json()
    assert body["expires_in_seconds"] == 60
    assert body["token"].startswith("sim-")
    async with connect(ws_url(streaming, body["token"])) as ws:
        begin = await recv_json(ws)
    assert begin["type"] == "Begin"
    assert begin["expires_at"] - streaming.sessions[0].connected_at == pytest.approx(600, abs=2)
    [record] = await tsim.wait_for_requests(1)
    assert record.params == {"expires_in_seconds": "60", "max_session_duration_seconds": "600"}
    assert (record.status, record.authorization_present, record.credential_ok) == (200, True, True)
    assert record.token == body["token"]


async def test_each_request_gets_a_fresh_token(tsim: TokenServiceSimulator) -> None:
    first, second = [(await get_token(tsim)).json()["token"] for _ in range(2)]
    assert first != second


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": CREDENTIAL}, {"Authorization": "Bearer someone-else"}],
    ids=["missing", "no-bearer", "wrong"],
)
async def test_bad_credential_is_401(tsim: TokenServiceSimulator, headers: dict[str, str]) -> None:
    response = await get_token(tsim, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid team token"}
    [record] = await tsim.wait_for_requests(1)
    assert record.authorization_present is bool(headers)
    assert record.credential_ok is False


@pytest.mark.parametrize(
    ("mode", "status"), [("401", 401), ("403", 403), ("429", 429), ("502", 502), ("503", 503)]
)
async def test_failure_modes(tsim: TokenServiceSimulator, mode: str, status: int) -> None:
    tsim.mode = mode  # type: ignore[assignment]

    response = await get_token(tsim)

    assert response.status_code == status
    assert isinstance(response.json()["error"], str)
    assert "token" not in response.json()
    assert ("Retry-After" in response.headers) is (status == 429)


async def test_429_carries_retry_after(tsim: TokenServiceSimulator) -> None:
    tsim.mode = "429"
    tsim.retry_after_seconds = 7
    response = await get_token(tsim)
    assert response.headers["Retry-After"] == "7"


async def test_no_token_mode_answers_200_without_token(tsim: TokenServiceSimulator) -> None:
    tsim.mode = "no_token"
    response = await get_token(tsim)
    assert response.status_code == 200
    assert "token" not in response.json()


async def test_slow_mode_delays_the_answer(tsim: TokenServiceSimulator) -> None:
    tsim.mode = "slow"
    tsim.slow_delay_seconds = 0.4
    loop = asyncio.get_running_loop()

    with pytest.raises(httpx.ReadTimeout):
        await get_token(tsim, client_timeout=0.1)
    started = loop.time()
    response = await get_token(tsim)

    assert response.status_code == 200
    assert loop.time() - started >= 0.4
    assert response.json()["token"].startswith("sim-")


async def test_mode_changes_at_runtime(tsim: TokenServiceSimulator) -> None:
    statuses = []
    for mode in ("ok", "503", "ok"):
        tsim.mode = mode  # type: ignore[assignment]
        statuses.append((await get_token(tsim)).status_code)
    assert statuses == [200, 503, 200]
    assert [r.mode for r in tsim.requests] == ["ok", "503", "ok"]


def test_unknown_mode_is_refused() -> None:
    tsim = TokenServiceSimulator(StreamingSimulator())
    with pytest.raises(ValueError, match="unknown token service mode"):
        tsim.mode = "sometimes"  # type: ignore[assignment]


async def test_any_base_path_ending_in_v3_token(tsim: TokenServiceSimulator) -> None:
    root = f"http://127.0.0.1:{tsim.port}"
    other_base = await get_token(tsim, url=root + "/proxy/assemblyai/v3/token")
    elsewhere = await get_token(tsim, url=root + "/v1/assemblyai/v3/ws")
    assert other_base.status_code == 200
    assert elsewhere.status_code == 404


async def test_bad_token_parameters_are_400(tsim: TokenServiceSimulator) -> None:
    responses = [
        await get_token(tsim, params=params)
        for params in (
            {"expires_in_seconds": 0},
            {"expires_in_seconds": 60, "max_session_duration_seconds": 20000},
            {},
        )
    ]
    assert [r.status_code for r in responses] == [400, 400, 400]
    assert all("error" in r.json() for r in responses)
