"""The doctor's decisions without I/O: levels, verdicts, causes and fixes, the report,
the renderers, and loading a partly broken configuration."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from pathlib import Path

import pytest

from edgecap.doctor.audio_check import judge as judge_audio
from edgecap.doctor.config_check import check_config
from edgecap.doctor.context import DoctorContext, DoctorOptions
from edgecap.doctor.explain import config_fix, network_kind, session_advice, token_fix
from edgecap.doctor.levels import measure
from edgecap.doctor.loading import load_doctor_config
from edgecap.doctor.mqtt_check import judge as judge_mqtt
from edgecap.doctor.mqtt_probe import MqttProbeOutcome, MqttProbeSettings
from edgecap.doctor.render import render_json, render_table
from edgecap.doctor.result import CheckResult, Report
from edgecap.doctor.runner import run_doctor
from edgecap.doctor.systemd_check import judge_unit, parse_show, process_note
from edgecap.providers.assemblyai.errors import classify_close, classify_http_status
from tests.daemon_proc import write_config
from tests.harness import silence, tone
from tests.strict_json import strict_loads

pytestmark = pytest.mark.unit

RATE = 16000


# -- levels and the audio verdict -------------------------------------------------------------


def test_levels_of_a_half_scale_sine() -> None:
    levels = measure(tone(1.0, 440, amplitude=0.5), RATE)
    assert levels.seconds == pytest.approx(1.0)
    assert levels.peak_dbfs == pytest.approx(-6.0, abs=0.1)
    assert levels.rms_dbfs == pytest.approx(-9.0, abs=0.1)  # sine RMS is 3 dB below peak
    assert levels.clipped_samples == 0
    assert not levels.muted
    assert not levels.clipping


def test_digital_silence_fails_and_asks_whether_the_microphone_is_muted() -> None:
    result = judge_audio("plughw:CARD=Mic,DEV=0", measure(silence(1.0), RATE), overruns=0)
    assert result.result == "fail"
    assert "is the microphone muted?" in result.detail
    assert "alsamixer -c Mic" in result.fix  # names the card from the device name
    assert result.data["rms_dbfs"] == -120.0


def test_a_faint_hiss_far_below_room_noise_counts_as_muted() -> None:
    result = judge_audio("default", measure(tone(1.0, 3000, amplitude=0.00005), RATE), 0)
    assert result.result == "fail"
    assert "muted" in result.detail


def test_clipping_is_a_warning_with_the_gain_to_lower() -> None:
    loud = tone(1.0, 200, amplitude=1.0) + tone(0.2, 200, amplitude=1.0)
    pcm = bytes(b"\xff\x7f" * 200) + loud  # a run of full-scale samples
    result = judge_audio("default", measure(pcm, RATE), 0)
    assert result.result == "warn"
    assert "clipped" in result.detail
    assert "lower the capture gain" in result.fix


def test_quiet_room_is_a_warning_not_a_failure() -> None:
    result = judge_audio("default", measure(tone(1.0, 300, amplitude=0.0005), RATE), 0)
    assert result.result == "warn"
    assert "very quiet" in result.detail
    assert result.passed


def test_card_numbers_are_flagged_even_when_the_level_is_fine() -> None:
    result = judge_audio("hw:1,0", measure(tone(1.0, 300, amplitude=0.3), RATE), 0)
    assert result.result == "warn"
    assert "plughw:CARD=<name>" in result.fix


def test_a_good_level_passes_with_the_figures() -> None:
    result = judge_audio("plughw:CARD=Mic,DEV=0", measure(tone(1.0, 300, 0.3), RATE), 2)
    assert result.result == "pass"
    assert "RMS" in result.detail
    assert "peak" in result.detail
    assert "2 overrun(s)" in result.detail


# -- causes and fixes -------------------------------------------------------------------------


def test_network_failures_are_told_apart() -> None:
    assert network_kind(socket.gaierror(-2, "Name or service not known")) == "dns"
    assert network_kind(ConnectionRefusedError(111, "Connection refused")) == "refused"
    assert network_kind(ssl.SSLCertVerificationError("certificate verify failed")) == "tls_verify"
    assert network_kind(TimeoutError("timed out")) == "timeout"
    wrapped = RuntimeError("request failed")
    wrapped.__cause__ = socket.gaierror(-3, "Temporary failure in name resolution")
    assert network_kind(wrapped) == "dns"


@pytest.mark.parametrize(
    ("status", "kind", "fragment"),
    [
        (401, "http", "team token"),
        (403, "http", "ask the token-service admin"),
        (429, "http", "wait"),
        (502, "http", "could not reach AssemblyAI"),
        (503, "http", "no AssemblyAI key"),
        (200, "malformed", "not point at a KeyPool-compatible"),
    ],
)
def test_token_service_fixes(status: int, kind: str, fragment: str) -> None:
    fix = token_fix("token service", status, kind, "file /etc/edgecap/credential")
    assert fragment in fix
    if status == 401:
        assert "file /etc/edgecap/credential" in fix  # says which credential is in use


def test_a_team_token_used_as_an_api_key_points_to_token_service_mode() -> None:
    fix = token_fix("AssemblyAI", 401, "http", "")
    assert 'auth.mode = "token_service"' in fix


def test_session_failures_name_cause_and_fix() -> None:
    url = "wss://streaming.assemblyai.com/v3/ws"
    v2 = session_advice("begin", classify_close(4001, "Not authorized"), url)
    assert "legacy v2" in v2.cause
    assert "wss://streaming.assemblyai.com/v3/ws" in v2.fix
    auth = session_advice(
        "begin", classify_close(1008, "Unauthorized Connection: Invalid token"), url
    )
    assert "rejected the token" in auth.cause
    assert "single-use" in auth.fix
    http = session_advice("handshake", classify_http_status(403), url)
    assert "HTTP 403" in http.cause
    early = session_advice("begin", classify_close(1011, "Internal Server Error"), url)
    assert "before Begin" in early.cause


def test_config_fix_adds_specific_advice() -> None:
    fix = config_fix(
        ["streaming.url: is the legacy v2 realtime endpoint: ...", "auth.x: unknown key"],
        "/etc/edgecap/edgecap.toml",
    )
    assert "edgecap check-config --config /etc/edgecap/edgecap.toml" in fix
    assert 'streaming.url = "wss://streaming.assemblyai.com/v3/ws"' in fix


# -- MQTT verdicts ----------------------------------------------------------------------------


SETTINGS = MqttProbeSettings("127.0.0.1", 1883, "edgecap-x-doctor", "edgecap/x/doctor/1", "u")


def test_mqtt_refused_credentials() -> None:
    result = judge_mqtt(MqttProbeOutcome("connack", reason="Not authorized"), SETTINGS)
    assert result.result == "fail"
    assert "mqtt.username" in result.detail
    assert "mqtt.password_file" in result.fix


def test_mqtt_connection_closed_before_connack_suggests_tls() -> None:
    result = judge_mqtt(MqttProbeOutcome("closed", reason="Unspecified error"), SETTINGS)
    assert "closed the connection" in result.detail
    assert "mqtt.tls = true" in result.fix


def test_mqtt_acl_drop_is_explained() -> None:
    result = judge_mqtt(MqttProbeOutcome("receive", connect_ms=3), SETTINGS)
    assert "ACL" in result.detail
    assert "`topic readwrite edgecap/x/#` after `user u`" in result.fix


# -- systemd ----------------------------------------------------------------------------------


def test_systemd_show_parsing_and_verdicts() -> None:
    props = parse_show(
        "LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n"
        "NRestarts=2\nWatchdogUSec=30000000\nStatusText=streaming, 3 turns today\n"
    )
    ok = judge_unit("edgecap.service", props, "outside")
    assert ok.result == "pass"
    assert not ok.required
    assert "watchdog 30 s" in ok.detail
    assert "2 restart(s)" in ok.detail
    failed = judge_unit(
        "edgecap.service",
        {**props, "ActiveState": "failed", "SubState": "failed", "Result": "watchdog"},
        "outside",
    )
    assert failed.result == "fail"
    assert "journalctl -u edgecap.service" in failed.fix
    missing = judge_unit("edgecap.service", {"LoadState": "not-found"}, "outside")
    assert "not installed" in missing.detail


def test_running_under_systemd_is_detected_from_the_environment() -> None:
    assert process_note({})[0] is False
    under, note = process_note({"INVOCATION_ID": "abc", "WATCHDOG_USEC": "20000000"})
    assert under
    assert "watchdog 20 s" in note


# -- report and rendering ---------------------------------------------------------------------


def _report() -> Report:
    return Report.of(
        [
            CheckResult("config", "pass", "valid"),
            CheckResult("audio", "warn", "quiet", "speak up"),
            CheckResult("token", "fail", "HTTP 401", "fix the credential " + "word " * 40),
            CheckResult("systemd", "skip", "no systemd", required=False),
        ]
    )


def test_exit_status_counts_only_required_checks_and_warnings_pass() -> None:
    report = _report()
    assert report.exit_status == 1
    assert [r.check for r in report.not_passed] == ["token"]
    ok = Report.of([r for r in report.results if r.check != "token"])
    assert ok.exit_status == 0
    skipped = Report.of([CheckResult("mqtt", "skip", "not run")])
    assert skipped.exit_status == 1  # a required check that could not run is not a pass


def test_table_and_json_show_the_same_results() -> None:
    report = _report()
    table = render_table(report, width=80)
    assert all(len(line) <= 80 for line in table.splitlines())
    assert "token" in table
    assert "FAIL" in table
    assert "fix: fix the credential" in table
    assert "systemd (info)" in table
    assert "1 of 3 required checks did not pass: token (fail)" in table
    data = strict_loads(render_json(report))
    assert data["ok"] is False
    assert data["exit_status"] == 1
    assert [c["result"] for c in data["checks"]] == ["pass", "warn", "fail", "skip"]
    assert data["checks"][2]["fix"].startswith("fix the credential")


# -- a partly broken configuration -------------------------------------------------------------


def test_an_invalid_section_does_not_hide_the_valid_ones(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "edgecap.toml",
        {"device_id": "dev-1"},
        {
            "auth": {"token_service_url": "http://127.0.0.1:9/v1/assemblyai"},
            "streaming": {"url": "wss://api.assemblyai.com/v2/realtime/ws"},
            "mqtt": {"host": "127.0.0.1", "port": 1884},
        },
    )
    cfg = load_doctor_config(
        path,
        {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": "cred-123"},
        installed_credentials=tmp_path / "none",
    )
    assert not cfg.valid
    assert any("legacy v2" in p for p in cfg.problems)
    assert cfg.streaming is None
    assert cfg.auth is not None
    assert cfg.mqtt is not None
    assert cfg.mqtt.port == 1884
    assert cfg.device_id == "dev-1"
    assert cfg.secrets.token_service_credential == "cred-123"
    assert "[streaming] is invalid" in cfg.unavailable("streaming")


def test_installed_credentials_are_used_like_the_unit_does(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "token-service-credential").write_text("team-cred-xyz\n")
    path = write_config(
        tmp_path / "edgecap.toml",
        {},
        {"auth": {"token_service_url": "http://127.0.0.1:9/v1/assemblyai"}},
    )
    cfg = load_doctor_config(path, {}, installed_credentials=creds)
    assert cfg.valid, cfg.problems
    assert cfg.secrets.token_service_credential == "team-cred-xyz"
    assert str(creds) in cfg.credentials_note


async def test_a_secret_file_others_can_read_is_a_config_warning(tmp_path: Path) -> None:
    secret = tmp_path / "credential"
    secret.write_text("team-cred-xyz\n")
    secret.chmod(0o644)
    path = write_config(
        tmp_path / "edgecap.toml",
        {},
        {
            "auth": {
                "token_service_url": "http://127.0.0.1:9/v1/assemblyai",
                "credential_file": str(secret),
            }
        },
    )
    cfg = load_doctor_config(path, {}, installed_credentials=tmp_path / "none")
    result = await check_config(DoctorContext(cfg, DoctorOptions()))
    assert result.result == "warn"
    assert str(secret) in result.detail
    assert "chmod 600" in result.fix
    secret.chmod(0o600)
    cfg = load_doctor_config(path, {}, installed_credentials=tmp_path / "none")
    assert (await check_config(DoctorContext(cfg, DoctorOptions()))).result == "pass"


async def test_a_key_the_mode_does_not_use_is_a_config_warning_naming_it(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "edgecap.toml",
        {},
        {
            "auth": {
                "token_service_url": "http://127.0.0.1:9/v1/assemblyai",
                "proxy_auth": "subprotocol",  # only used with mode = "proxy"
            }
        },
    )
    env = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": "team-cred-xyz"}
    cfg = load_doctor_config(path, env, installed_credentials=tmp_path / "none")
    result = await check_config(DoctorContext(cfg, DoctorOptions()))
    assert result.result == "warn"
    assert "auth.proxy_auth" in result.detail


def test_a_config_path_that_is_a_fifo_does_not_block_the_doctor(tmp_path: Path) -> None:
    fifo = tmp_path / "edgecap.toml"
    os.mkfifo(fifo)
    cfg = load_doctor_config(fifo, {}, installed_credentials=tmp_path / "none")
    assert not cfg.valid
    assert any("FIFO" in p or "named pipe" in p for p in cfg.problems), cfg.problems


async def test_a_check_that_hangs_is_cut_and_the_doctor_still_ends_in_time(
    tmp_path: Path,
) -> None:
    cfg = load_doctor_config(tmp_path / "missing.toml", {}, installed_credentials=tmp_path)
    ran: list[str] = []

    async def hangs(ctx: DoctorContext) -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def quick(ctx: DoctorContext) -> CheckResult:
        ran.append("quick")
        return CheckResult("systemd", "pass", "fine")

    checks = [("audio", hangs), ("token", hangs), ("systemd", quick)]
    began = time.monotonic()
    report = await run_doctor(cfg, DoctorOptions(environ={}), checks=checks, total_seconds=1.0)
    took = time.monotonic() - began
    assert took < 1.3
    assert ran == ["quick"]  # the last check still ran, with the time kept for it
    audio, token, systemd = report.results
    assert audio.result == token.result == "fail"
    assert audio.detail.startswith("did not finish within")
    assert "another program" in audio.fix
    assert "token service" in token.fix
    assert systemd.result == "pass"
