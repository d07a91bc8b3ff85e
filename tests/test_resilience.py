"""The streaming engine against the simulators (real WebSocket and HTTP on loopback):
every close code, handshake status and token-service status is classified, retried the
way its class demands (at once, with backoff, after a cool-down) and reported in the
status; repeated auth failures stay slow; the breaker trips; a token-service outage never
touches a running session, and a reconnect uses the prefetched token.

Long waits run on virtual time: the engine's sleep records the delay it was asked for
and returns at once (a test ends by blocking the n-th sleep), so a 5-minute cool-down
costs nothing and the figures are exact."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest

from edgecap.app.status import StatusModel
from edgecap.audio.frame import Frame
from edgecap.auth.tokens import TokenClient
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.policy import RetrySettings
from edgecap.engine.runner import Engine
from edgecap.engine.session import SessionSettings
from edgecap.providers.assemblyai.url import StreamParams
from edgecap.sim import FaultPlan, StreamingSimulator, TokenMode, TokenServiceSimulator
from edgecap.turns.transcript import TranscriptTurn
from tests.harness import SpeechFixture, silence

pytestmark = pytest.mark.integration

CRED = "team-cred-resilience-5e1"
RETRY = RetrySettings()  # the defaults: reconnect_max 30 s, cool-down 300 s, auth 60 s


@dataclass
class VirtualTime:
    """Waits of the engine on a virtual clock; the `block_at`-th wait never returns."""

    block_at: int | None = None
    offset: float = 0.0
    delays: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)
    blocked: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.block_at is not None and len(self.delays) >= self.block_at:
            self.blocked.set()
            await asyncio.Event().wait()  # until the engine is stopped
        self.offset += seconds
        self.at.append(self.now())
        await asyncio.sleep(0)


class Feeder:
    """A real-time microphone stand-in: queued PCM in 50 ms frames, silence in between."""

    def __init__(self, on_frame: Callable[[Frame], None]) -> None:
        self._on_frame = on_frame
        self._queue: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def play(self, pcm: bytes) -> None:
        self._queue.extend(pcm[i : i + 1600] for i in range(0, len(pcm) - 1599, 1600))

    @property
    def idle(self) -> bool:
        return not self._queue

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0, wall0, seq = loop.time(), time.time(), 0
        while True:
            pcm = self._queue.pop(0) if self._queue else bytes(1600)
            self._on_frame(Frame(seq, pcm, wall0 + seq * 0.05, t0 + seq * 0.05, 50))
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq * 0.05 - loop.time()))  # real-time pacing


class Rig:
    """Engine + token client against the simulators, recording what it reports."""

    def __init__(
        self,
        sim: StreamingSimulator,
        ts: TokenServiceSimulator,
        *,
        virtual: VirtualTime | None = None,
        retry: RetrySettings = RETRY,
        token_expires: int = 60,
        replay_ms: int = 30_000,
    ) -> None:
        self.turns: list[TranscriptTurn] = []
        self.statuses: list[dict[str, Any]] = []
        self.status = StatusModel("rig")
        self._status_changed = asyncio.Event()
        self.status.listeners.append(self._record_status)
        self.client = TokenClient(
            ts.token_url,
            f"Bearer {CRED}",
            source="token service",
            expires_in_seconds=token_expires,
            max_session_seconds=3600,
            timeout=2.0,
        )
        self.settings = SessionSettings(
            url=sim.url,
            params=StreamParams(16000, "universal-streaming-english", True, 0.4, 400, 1280),
            device_id="rig",
            connect_timeout=3.0,
            begin_timeout=3.0,
            terminate_timeout=2.0,
        )
        self.engine = Engine(
            lambda: self.settings,
            self.client,
            buffer=AudioBuffer(replay_ms, 50),
            on_turn=self.turns.append,
            reporter=self.status,
            counters=self.status.counters,
            retry=retry,
            clock=virtual.now if virtual else time.monotonic,
            sleep=virtual.sleep if virtual else asyncio.sleep,
            rng=random.Random(7),
        )
        self.feeder = Feeder(self.engine.on_frame)
        self._task: asyncio.Task[None] | None = None

    def _record_status(self, status: StatusModel, what: str) -> None:
        self.statuses.append(status.to_payload())
        self._status_changed.set()

    async def wait_status(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Until a status the engine published satisfies `predicate` (5 s at most)."""
        async with asyncio.timeout(5):
            while not any(predicate(s) for s in self.statuses):
                self._status_changed.clear()
                await self._status_changed.wait()

    async def __aenter__(self) -> Rig:
        self.feeder.start()
        self.engine.audio_available(True)
        self._task = asyncio.create_task(self.engine.run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.engine.stop()
        await self.feeder.stop()
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)
        await self.client.aclose()


def strict_sim(**kwargs: Any) -> StreamingSimulator:
    """Stricter than the default real-time check (1.25x + 2 s): pacing must really hold."""
    return StreamingSimulator(max_rate=1.21, rate_slack_seconds=0.3, **kwargs)


# -- every failure: class, retry behaviour, published status ----------------------------


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[StreamingSimulator, TokenServiceSimulator], None]
    error_class: str
    code: int | None
    waits: tuple[str, ...]
    """Per failure: "now" (0 s), "backoff" (0.5-36 s), "throttled" (5-36 s),
    "auth" (60-72 s), "cooldown" (300-360 s)."""
    state: str


def fault(plan: FaultPlan, times: int = 1) -> Callable[[StreamingSimulator, Any], None]:
    return lambda sim, ts: sim.schedule_fault(plan, times)


def token_mode(mode: TokenMode) -> Callable[[Any, TokenServiceSimulator], None]:
    def arrange(sim: StreamingSimulator, ts: TokenServiceSimulator) -> None:
        ts.mode = mode

    return arrange


CASES = [
    Case("drop-1006", fault(FaultPlan.drop()), "transient", 1006, ("now",), "reconnecting"),
    Case("close-1011", fault(FaultPlan.close(1011)), "transient", 1011, ("now",), "reconnecting"),
    Case("close-1013", fault(FaultPlan.close(1013)), "transient", 1013, ("now",), "reconnecting"),
    Case("close-3005", fault(FaultPlan.close(3005)), "transient", 3005, ("now",), "reconnecting"),
    Case(
        "close-1000-unasked",
        fault(FaultPlan.close(1000)),
        "transient",
        1000,
        ("now",),
        "reconnecting",
    ),
    Case(
        "close-3009",
        fault(FaultPlan.close(3009)),
        "throttled",
        3009,
        ("throttled",),
        "reconnecting",
    ),
    Case(
        "close-1008-twice",
        fault(FaultPlan.close(1008), 2),
        "auth",
        1008,
        ("now", "auth"),
        "auth_failed",
    ),
    Case(
        "close-3006", fault(FaultPlan.close(3006)), "client_bug", 3006, ("throttled",), "degraded"
    ),
    Case(
        "close-3007", fault(FaultPlan.close(3007)), "client_bug", 3007, ("throttled",), "degraded"
    ),
    Case(
        "close-1009", fault(FaultPlan.close(1009)), "client_bug", 1009, ("throttled",), "degraded"
    ),
    Case(
        "before-begin-4001",
        fault(FaultPlan.close_before_begin(4001)),
        "config",
        4001,
        ("cooldown",),
        "degraded",
    ),
    Case(
        "before-begin-1008-twice",
        fault(FaultPlan.close_before_begin(1008), 2),
        "auth",
        1008,
        ("now", "auth"),
        "auth_failed",
    ),
    Case(
        "handshake-401-twice",
        fault(FaultPlan.handshake(401), 2),
        "auth",
        401,
        ("now", "auth"),
        "auth_failed",
    ),
    Case(
        "handshake-403-twice",
        fault(FaultPlan.handshake(403), 2),
        "auth",
        403,
        ("now", "auth"),
        "auth_failed",
    ),
    Case(
        "handshake-429",
        fault(FaultPlan.handshake(429)),
        "throttled",
        429,
        ("throttled",),
        "reconnecting",
    ),
    Case(
        "handshake-500-twice",
        fault(FaultPlan.handshake(500), 2),
        "transient",
        500,
        ("now", "backoff"),
        "reconnecting",
    ),
    Case(
        "handshake-502",
        fault(FaultPlan.handshake(502)),
        "transient",
        502,
        ("now",),
        "reconnecting",
    ),
    Case(
        "handshake-503",
        fault(FaultPlan.handshake(503)),
        "transient",
        503,
        ("now",),
        "reconnecting",
    ),
    Case(
        "handshake-404", fault(FaultPlan.handshake(404)), "config", 404, ("cooldown",), "degraded"
    ),
    Case("token-401", token_mode("401"), "auth", 401, ("now", "auth"), "auth_failed"),
    Case("token-403", token_mode("403"), "auth", 403, ("now", "auth"), "auth_failed"),
    Case("token-429", token_mode("429"), "throttled", 429, ("throttled",), "reconnecting"),
    Case("token-502", token_mode("502"), "transient", 502, ("now", "backoff"), "reconnecting"),
    Case("token-503", token_mode("503"), "transient", 503, ("now",), "reconnecting"),
    Case("token-no-token", token_mode("no_token"), "config", 200, ("cooldown",), "degraded"),
]

WAIT_RANGES = {
    "now": (0.0, 0.0),
    "backoff": (0.5, 36.0),
    "throttled": (5.0, 36.0),
    "auth": (60.0, 72.0),
    "cooldown": (300.0, 360.0),
}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_failure_is_classified_retried_and_reported(case: Case) -> None:
    async with strict_sim() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        case.arrange(sim, ts)
        vt = VirtualTime(block_at=len(case.waits))  # the last wait to observe never ends
        async with Rig(sim, ts, virtual=vt) as rig:
            await asyncio.wait_for(vt.blocked.wait(), 10)
        for kind, delay in zip(case.waits, vt.delays, strict=True):
            low, high = WAIT_RANGES[kind]
            assert low <= delay <= high, (case.id, vt.delays)
        # the status published at the last failure says what, why and when the next try is
        last = next(s for s in reversed(rig.statuses) if s["last_error"] is not None)
        assert last["state"] == case.state
        assert last["session_id"] is None
        error = last["last_error"]
        assert error["class"] == case.error_class
        assert error["code"] == case.code
        assert error["hint"]
        assert case.error_class in last["detail"]
        assert last["next_attempt_at"] is not None
        assert last["counters"]["reconnects"] == len(case.waits)
        if case.id == "before-begin-4001":
            assert "wss://streaming.assemblyai.com/v3/ws" in error["hint"]
        if case.error_class == "auth":  # says what to do
            assert "check" in error["hint"] or "admin" in error["hint"]


async def test_session_expiry_3008_opens_the_next_session_at_once() -> None:
    async with strict_sim() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        sim.schedule_fault(FaultPlan.close(3008))
        vt = VirtualTime()
        async with Rig(sim, ts, virtual=vt) as rig:
            second = await sim.wait_for_begin(1)
            await rig.wait_status(lambda s: s["session_id"] == second.session_id)
        assert vt.delays == []  # no backoff: an expiry is not a failure
        assert sim.sessions[0].close_code == 3008
        assert rig.engine.policy.failures == 0
        assert all(s["state"] in ("streaming",) for s in rig.statuses)
        assert {s["session_id"] for s in rig.statuses} == {
            sim.sessions[0].session_id,
            sim.sessions[1].session_id,
        }


async def test_a_bug_in_a_session_is_reported_billed_and_retried_after_a_cool_down() -> None:
    """An exception from edgecap's own code inside a session (here: the turn handler) is
    not hostile input: the session's connection is closed, its time is billed, the status
    says `client_bug` with what happened, and a new session follows after the bug wait."""
    async with strict_sim() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        vt = VirtualTime(block_at=1)
        async with Rig(sim, ts, virtual=vt) as rig:

            def broken(turn: TranscriptTurn) -> None:
                raise RuntimeError("turn handler exploded")

            rig.engine._on_turn = broken
            first = await sim.wait_for_begin(0)
            await sim.emit_final_turns(1)
            await asyncio.wait_for(vt.blocked.wait(), 10)
            await asyncio.wait_for(sim.wait_closed(first), 5)
        assert first.closed_by == "client"  # the billed session was not left open
        last = next(s for s in reversed(rig.statuses) if s["last_error"] is not None)
        assert last["last_error"]["class"] == "client_bug"
        assert "RuntimeError: turn handler exploded" in last["last_error"]["hint"]
        assert last["state"] == "degraded"
        assert rig.engine.billed_seconds > 0


# -- bounded attempts: auth slow-down and the quick-failure breaker ----------------------


async def test_repeated_auth_failure_makes_few_attempts_per_minute() -> None:
    async with strict_sim() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        sim.default_fault = FaultPlan.handshake(401)  # the server refuses every token
        vt = VirtualTime()
        async with Rig(sim, ts, virtual=vt) as rig:
            await sim.wait_until(lambda: vt.offset >= 3600, "an hour of virtual time")
        attempts = list(itertools.accumulate([0.0, *vt.delays]))  # when each one began
        first_hour = [t for t in attempts if t < 3600]
        per_minute = max(sum(1 for t in first_hour if s <= t < s + 60) for s in first_hour)
        assert per_minute <= 2
        assert len(first_hour) <= 16
        assert sim.handshake_rejections >= len(first_hour) - 1
        assert vt.delays[0] == 0  # the one immediate re-mint
        assert all(d >= 60 for d in vt.delays[1:])
        status = rig.statuses[-1]
        assert status["state"] == "auth_failed"
        assert status["last_error"]["class"] == "auth"
        assert "credentials" in status["last_error"]["hint"]


@pytest.mark.parametrize(
    ("plan", "state"),
    [(FaultPlan.close(1011), "degraded"), (FaultPlan.close(1008), "auth_failed")],
    ids=["server-error", "auth-after-begin"],
)
async def test_sessions_dying_right_after_begin_trip_the_breaker(
    plan: FaultPlan, state: str
) -> None:
    async with strict_sim() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        sim.default_fault = plan
        vt = VirtualTime(block_at=4)
        async with Rig(sim, ts, virtual=vt) as rig:
            await asyncio.wait_for(vt.blocked.wait(), 10)
        # three quick deaths, then a long cool-down instead of a storm
        assert len(sim.sessions) == 4
        assert all(s.begin is not None for s in sim.sessions)
        assert vt.delays[0] == 0
        assert vt.delays[2] >= RETRY.cooldown_seconds
        assert rig.statuses[-1]["state"] == state
        assert vt.delays[3] >= RETRY.cooldown_seconds  # still open: every probe fails


# -- the token service is separate from the stream --------------------------------------


async def test_token_service_outage_does_not_touch_the_running_session(
    speech_fixtures: list[SpeechFixture],
) -> None:
    fixtures = speech_fixtures[:1]
    async with (
        strict_sim(script=[f.text for f in fixtures]) as sim,
        TokenServiceSimulator(sim, credential=CRED) as ts,
    ):
        # short-lived tokens: the spare is renewed every 3 s, so the outage is noticed
        async with Rig(sim, ts, token_expires=6) as rig:
            session = await sim.wait_for_begin(0)
            await ts.wait_for_requests(2)  # the first token and the spare
            ts.mode = "503"
            for f in fixtures:
                rig.feeder.play(silence(0.6) + f.pcm + silence(1.5))
            await ts.wait_for_requests(3)
            assert ts.requests[2].status == 503
            failed = rig.status.counters
            await sim.wait_until(lambda: failed.token_failures >= 1, "a failed renewal seen")
            await sim.wait_until(lambda: len(rig.turns) >= 1, "the turn")
            assert not session.closed  # the session kept streaming throughout
            assert rig.status.state == "streaming"
            assert [t.text for t in rig.turns] == [f.text for f in fixtures]
            assert {t.session_id for t in rig.turns} == {session.session_id}
            ts.mode = "ok"
            await sim.wait_until(lambda: rig.engine.prefetcher.spare_ready, "spare again")
        assert len(sim.sessions) == 1


async def test_reconnect_uses_the_prefetched_token() -> None:
    async with strict_sim() as sim, TokenServiceSimulator(sim, credential=CRED) as ts:
        sim.schedule_fault(FaultPlan.drop(after_seconds=1.0))
        async with Rig(sim, ts):
            first = await sim.wait_for_begin(0)
            second = await sim.wait_for_begin(1)
        minted = {r.token: r.at for r in ts.requests if r.token}
        assert first.closed_at is not None
        assert minted[second.token] < first.closed_at  # in hand before the drop
        assert first.close_code == 1006
