"""`edgecap doctor` against real parts: ALSA capture through the FIFO-fed device, the token
service and v3 streaming simulators, and a test-owned mosquitto. Each failure test breaks
exactly one link and checks that only that check fails, with its cause, its fix, and the
exit status; the healthy run goes through the real command line."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgecap.doctor.config_check import check_config
from edgecap.doctor.context import DoctorOptions
from edgecap.doctor.loading import load_doctor_config
from edgecap.doctor.render import render_table
from edgecap.doctor.result import Report
from edgecap.doctor.runner import run_doctor
from edgecap.doctor.streaming_check import check_streaming
from edgecap.doctor.token_check import check_token
from edgecap.sim import FaultPlan, StreamingSimulator, TokenServiceSimulator
from edgecap.sim.tokens import TokenMode
from tests.daemon_proc import REPO, write_config
from tests.harness import AlsaFifoSource, MosquittoBroker, SpeechFixture, free_port, tone
from tests.strict_json import strict_loads

pytestmark = pytest.mark.integration

CRED = "team-cred-doctor-5d1e9a"
DEVICE = "doctor-dev"
SCRIPT = "Set a timer for ten minutes"  # the text the simulator gives the first turn
REQUIRED = ("config", "audio", "token", "streaming", "mqtt")


@dataclass
class Chain:
    """A healthy chain; tests change one part and run the doctor."""

    tmp: Path
    sim: StreamingSimulator
    tokens: TokenServiceSimulator
    broker: MosquittoBroker
    mic: AlsaFifoSource
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def write(self, **changes: dict[str, Any]) -> Path:
        sections = {k: {**v, **changes.get(k, {})} for k, v in self.sections.items()}
        return write_config(
            self.tmp / "edgecap.toml",
            {"device_id": DEVICE, "state_dir": str(self.tmp / "state")},
            sections,
        )

    def environ(self, credential: str = CRED) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECAP_")}
        return {**env, **self.mic.env, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": credential}

    def speak(self, seconds: float = 2.0, amplitude: float = 0.2) -> None:
        """Something for the audio check to hear (the FIFO plays silence otherwise)."""
        self.mic.play_pcm(tone(seconds, 300, amplitude=amplitude))

    async def doctor(
        self, path: Path | None = None, *, credential: str = CRED, **options: Any
    ) -> Report:
        cfg = load_doctor_config(
            path or self.write(),
            self.environ(credential),
            installed_credentials=self.tmp / "no-credentials",
        )
        opts = DoctorOptions(timeout=2.0, record_seconds=0.3, environ={}, **options)
        return await run_doctor(cfg, opts)


@pytest.fixture
async def chain(
    tmp_path: Path, mqtt_broker: MosquittoBroker, alsa_source: AlsaFifoSource
) -> AsyncIterator[Chain]:
    async with (
        StreamingSimulator(script=[SCRIPT]) as sim,
        TokenServiceSimulator(sim, credential=CRED) as tokens,
    ):
        yield Chain(
            tmp_path,
            sim,
            tokens,
            mqtt_broker,
            alsa_source,
            {
                "audio": {"device": alsa_source.device},
                "auth": {"token_service_url": tokens.base_url},
                "streaming": {"url": sim.url},
                "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port},
            },
        )


def only_failure(report: Report, check: str) -> Any:
    """The one required check that did not pass; every other required check passed."""
    assert report.exit_status == 1
    bad = [r.check for r in report.not_passed]
    expected = [check]
    if check == "token":
        expected.append("streaming")  # it needs the token
    assert bad == expected, render_table(report)
    result = report.get(check)
    assert result is not None
    return result


# -- the healthy chain, through the real command line -----------------------------------------


async def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgecap",
        *args,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


CLI_ARGS = ["--timeout", "3", "--record", "0.5"]


async def test_healthy_chain_exits_0_and_terminates_its_session_at_once(chain: Chain) -> None:
    chain.speak()
    args = ["doctor", "--config", str(chain.write()), "--json", *CLI_ARGS]
    code, out, err = await run_cli(args, chain.environ())
    report = strict_loads(out)
    assert code == 0, out + err
    assert report["ok"] is True
    results = {c["check"]: c for c in report["checks"]}
    assert [c["check"] for c in report["checks"]] == [*REQUIRED, "systemd"]
    assert all(results[name]["result"] == "pass" for name in REQUIRED), out
    assert results["systemd"]["required"] is False
    audio = results["audio"]["data"]
    assert -20 < audio["rms_dbfs"] < -15  # a 0.2 full-scale tone: -17 dBFS RMS
    # exactly one token spent, one session: opened, terminated at once, billed ~0 s
    assert len(chain.tokens.requests) == 1
    assert len(chain.sim.sessions) == 1
    session = chain.sim.sessions[0]
    assert session.terminate_received
    assert session.close_code == 1000
    assert session.session_duration_seconds is not None
    assert session.session_duration_seconds <= 1
    assert results["streaming"]["data"]["session_id"] == session.session_id
    assert results["streaming"]["data"]["billed_seconds"] == session.session_duration_seconds
    assert results["mqtt"]["data"]["topic"].startswith(f"edgecap/{DEVICE}/doctor/")
    assert CRED not in out + err


async def test_wrong_credential_in_the_table_output(chain: Chain) -> None:
    chain.speak()
    args = ["doctor", "--config", str(chain.write()), *CLI_ARGS]
    code, out, err = await run_cli(args, chain.environ(credential="an-old-revoked-token"))
    assert code == 1
    # the row's detail wraps at the terminal's width (its words are compared, not lines)
    token_row = " ".join(out[out.index("token ") : out.index("streaming ")].split())
    assert "FAIL" in token_row
    assert "HTTP 401" in token_row
    assert "credential is wrong or revoked" in token_row
    assert "environment EDGECAP_TOKEN_SERVICE_CREDENTIAL" in token_row  # where it came from
    flat = " ".join(out.split())
    assert "not run: the token service did not issue a token" in flat
    assert "did not pass: token (fail), streaming (skip)" in flat
    assert "an-old-revoked-token" not in out + err
    assert chain.sim.handshake_attempts == 0


async def test_missing_audio_device_through_the_cli(chain: Chain) -> None:
    args = ["doctor", "--config", str(chain.write(audio={"device": "nosuchmic"})), "--json"]
    code, out, _ = await run_cli([*args, *CLI_ARGS], chain.environ())
    report = strict_loads(out)
    assert code == 1
    assert report["failed"] == ["audio"]
    audio = next(c for c in report["checks"] if c["check"] == "audio")
    assert "audio device 'nosuchmic' not found" in audio["detail"]
    assert "is the microphone plugged in?" in audio["detail"]
    assert "edgecap devices" in audio["fix"]


# -- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "cause", "fix"),
    [
        (
            "wss://api.assemblyai.com/v2/realtime/ws",
            "legacy v2 realtime endpoint",
            'set streaming.url = "wss://streaming.assemblyai.com/v3/ws"',
        ),
        (
            "wss://streaming.assemblyai.com/v3/ws?token=abc123secret",
            "credentials don't belong in the URL",
            "remove keys and tokens from URLs",
        ),
    ],
)
async def test_bad_streaming_url_is_explained_and_the_rest_still_runs(
    chain: Chain, url: str, cause: str, fix: str
) -> None:
    chain.speak()
    report = await chain.doctor(chain.write(streaming={"url": url}))
    config = report.get("config")
    assert config is not None
    assert config.result == "fail"
    assert cause in config.detail
    assert fix in config.fix
    streaming = report.get("streaming")
    assert streaming is not None
    assert streaming.result == "skip"
    assert "[streaming] is invalid" in streaming.detail
    # the sections that are valid were still checked
    assert [r.check for r in report.not_passed] == ["config", "streaming"]
    assert "abc123secret" not in render_table(report)


# -- audio ------------------------------------------------------------------------------------


async def test_silent_microphone(chain: Chain) -> None:
    report = await chain.doctor()  # nothing queued: the device delivers digital silence
    audio = only_failure(report, "audio")
    assert "digital silence" in audio.detail
    assert "is the microphone muted?" in audio.detail
    assert "alsamixer" in audio.fix


# -- token service ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "cause", "fix"),
    [
        ("403", "may not use AssemblyAI", "ask the token-service admin to grant it"),
        ("429", "rate limiting this device", "wait and run the doctor again"),
        ("502", "could not reach AssemblyAI", "check its upstream"),
        ("503", "no AssemblyAI key or capacity", "add a key"),
        ("no_token", "not a KeyPool-compatible", "give the service's base URL"),
    ],
)
async def test_token_service_failures(chain: Chain, mode: TokenMode, cause: str, fix: str) -> None:
    chain.speak()
    chain.tokens.mode = mode
    token = only_failure(await chain.doctor(), "token")
    assert cause in token.detail
    assert fix in token.fix
    assert chain.sim.handshake_attempts == 0  # no session without a token


async def test_token_service_down(chain: Chain) -> None:
    chain.speak()
    down = f"http://127.0.0.1:{free_port()}/v1/assemblyai"
    token = only_failure(await chain.doctor(chain.write(auth={"token_service_url": down})), "token")
    assert "nothing accepts connections" in token.detail
    assert "start the token service" in token.fix


async def test_token_service_too_slow(chain: Chain) -> None:
    chain.speak()
    chain.tokens.mode = "slow"
    chain.tokens.slow_delay_seconds = 1.0
    cfg = load_doctor_config(
        chain.write(), chain.environ(), installed_credentials=chain.tmp / "none"
    )
    checks = [("config", check_config), ("token", check_token), ("streaming", check_streaming)]
    report = await run_doctor(cfg, DoctorOptions(timeout=0.3, environ={}), checks=checks)
    token = only_failure(report, "token")
    assert "did not answer in time" in token.detail
    assert "--timeout" in token.fix


# -- streaming service --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "cause", "fix"),
    [
        (FaultPlan.close_before_begin(1008), "rejected the token", "single-use"),
        (FaultPlan.handshake(403), "refused the WebSocket upgrade with HTTP 403", "belong"),
        (FaultPlan.close_before_begin(1011), "closed the connection before Begin", "transient"),
        (FaultPlan.close_before_begin(4001), "legacy v2", "wss://streaming.assemblyai.com/v3/ws"),
    ],
    ids=["1008", "http-403", "close-before-begin", "4001"],
)
async def test_streaming_failures(chain: Chain, plan: FaultPlan, cause: str, fix: str) -> None:
    chain.speak()
    chain.sim.schedule_fault(plan)
    streaming = only_failure(await chain.doctor(), "streaming")
    assert cause in streaming.detail
    assert fix in streaming.fix
    assert chain.sim.handshake_attempts == 1  # one attempt, no retries


async def test_token_from_another_account_is_rejected_with_1008(chain: Chain) -> None:
    chain.speak()
    async with (
        StreamingSimulator() as other,
        TokenServiceSimulator(other, credential=CRED) as other_tokens,
    ):
        path = chain.write(auth={"token_service_url": other_tokens.base_url})
        streaming = only_failure(await chain.doctor(path), "streaming")
    assert "Unauthorized Connection: Invalid token" in streaming.detail
    assert streaming.data["code"] == 1008


async def test_wrong_model_fails_and_the_session_is_still_terminated(chain: Chain) -> None:
    chain.speak()
    chain.sim.settings.reported_model = "universal-3-6-pro"
    streaming = only_failure(await chain.doctor(), "streaming")
    assert "runs speech model 'universal-3-6-pro'" in streaming.detail
    assert "'universal-streaming-english' is configured" in streaming.detail
    assert 'streaming.speech_model = "universal-3-6-pro"' in streaming.fix
    assert chain.sim.sessions[0].terminate_received


# -- --listen -----------------------------------------------------------------------------------


async def test_listen_prints_the_turns_heard(
    chain: Chain, speech_fixtures: list[SpeechFixture]
) -> None:
    fixture = next(f for f in speech_fixtures if f.path.name == "set-timer.wav")
    # room noise for the audio check (-55 dBFS: below the simulator's speech threshold, so
    # what the audio check leaves unread does not become a turn)
    chain.speak(0.5, amplitude=0.0025)
    chain.mic.play_silence(0.5)
    chain.mic.play_wav(fixture.path)
    chain.mic.play_silence(1.5)
    lines: list[str] = []
    report = await chain.doctor(
        listen_seconds=fixture.duration_ms / 1000 + 2.0, on_line=lines.append
    )
    assert report.exit_status == 0, render_table(report)
    listen = report.get("listen")
    assert listen is not None
    assert listen.result == "pass"
    assert fixture.text == SCRIPT
    assert f"turn 0: {fixture.text}" in lines, lines
    assert listen.data["turns"] == [{"turn_order": 0, "text": fixture.text}]
    listened = chain.sim.sessions[1]
    assert listened.terminate_received
    assert listened.close_code == 1000


async def test_listen_is_skipped_when_no_session_can_open(chain: Chain) -> None:
    chain.speak()
    chain.sim.schedule_fault(FaultPlan.close_before_begin(1008))
    report = await chain.doctor(listen_seconds=5.0)
    listen = report.get("listen")
    assert listen is not None
    assert listen.result == "skip"
    assert "see streaming" in listen.detail
    assert chain.sim.handshake_attempts == 1  # no second token or session spent
    assert len(chain.tokens.requests) == 1


@pytest.mark.parametrize("proxy_auth", ["header", "subprotocol"])
async def test_proxy_mode_checks_the_way_the_daemon_connects(chain: Chain, proxy_auth: str) -> None:
    """With auth.mode = "proxy" nothing is minted: the token check says so and passes, the
    streaming check opens (and terminates) a session through the proxy with the team
    credential, as the daemon would."""
    chain.sim.credential = CRED
    chain.speak()
    path = chain.write(
        auth={"mode": "proxy", "proxy_auth": proxy_auth},
        streaming={"url": chain.sim.proxy_url},
    )
    path.write_text(
        path.read_text().replace(f'token_service_url = "{chain.tokens.base_url}"\n', "")
    )
    report = await chain.doctor(path)
    assert report.exit_status == 0, render_table(report)
    token = report.get("token")
    assert token is not None
    assert "no token needed" in token.detail
    assert chain.tokens.requests_started == 0
    session = chain.sim.sessions[0]
    assert session.auth == f"proxy_{proxy_auth}"
    assert session.closed_by == "server"  # Terminate answered: billed about a second


async def test_a_refused_proxy_credential_is_named_as_the_proxys(chain: Chain) -> None:
    chain.sim.credential = CRED
    path = chain.write(auth={"mode": "proxy"}, streaming={"url": chain.sim.proxy_url})
    path.write_text(
        path.read_text().replace(f'token_service_url = "{chain.tokens.base_url}"\n', "")
    )
    chain.speak()
    report = await chain.doctor(path, credential="nxkp-wrong")
    result = only_failure(report, "streaming")
    assert "KeyPool proxy" in result.detail
    assert "refused the team credential (HTTP 401" in result.detail
    assert "credential_file" in result.fix
