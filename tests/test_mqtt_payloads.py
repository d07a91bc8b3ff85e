"""Payloads and messages that need no broker: stats, partials, Hermes, connection errors,
and the new [mqtt]/[spool] config keys as check-config reports them."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from edgecap.config import ConfigError, load_config
from edgecap.mqtt.errors import explain_connack, explain_connect_error
from edgecap.mqtt.hermes import text_captured
from edgecap.mqtt.partial import partial_payload
from edgecap.mqtt.stats import DaemonCounters, DeliveryCounters, stats_payload
from edgecap.providers.assemblyai.messages import Turn, Word
from edgecap.state.health import StoreHealth
from edgecap.turns.transcript import TranscriptTurn
from tests.strict_json import strict_loads

pytestmark = pytest.mark.unit

BASE = '[auth]\ntoken_service_url = "https://keypool.example.com/v1/assemblyai"\n'
ENV = {"EDGECAP_TOKEN_SERVICE_CREDENTIAL": "cred-123456"}


def final_turn(text: str = "Turn on the lights.", ended_at: float | None = 100.0) -> TranscriptTurn:
    return TranscriptTurn(
        id="sess:2",
        device_id="kitchen-pi",
        session_id="sess",
        turn_order=2,
        text=text,
        confidence=0.87,
        end_of_turn_confidence=0.6,
        words=(),
        language_code=None,
        started_at=98.0,
        ended_at=ended_at,
        speech_model="universal-streaming-english",
        formatted=True,
    )


def test_stats_payload_carries_every_counter() -> None:
    payload = stats_payload(
        "kitchen-pi",
        DaemonCounters(
            frames_captured=1200,
            overruns=1,
            sessions=2,
            reconnects=1,
            turns=5,
            billed_seconds=61.26,
        ),
        DeliveryCounters(spool_depth=3, spool_evictions=4, delivered=5, mqtt_connects=2),
        now=1_790_000_060.0,
        started_at=1_790_000_000.0,
    )
    assert payload["schema"] == "edgecap.stats/1"
    assert payload["uptime_seconds"] == 60
    assert payload["billed_seconds"] == 61.3
    assert (payload["frames_captured"], payload["overruns"]) == (1200, 1)
    assert (payload["sessions"], payload["reconnects"], payload["turns"]) == (2, 1, 5)
    assert (payload["spool_depth"], payload["spool_evictions"]) == (3, 4)
    assert payload["at"] == "2026-09-21T14:14:20.000Z"
    assert "storage" not in payload  # only when the parts report it


def test_stats_payload_says_where_the_spool_and_the_ledger_are_kept() -> None:
    spool = StoreHealth(durable=False, fallbacks=1, memory_writes=3)
    ledger = StoreHealth(recreated=1)
    payload = stats_payload(
        "kitchen-pi",
        DaemonCounters(turns=3, ledger_storage=ledger.payload()),
        DeliveryCounters(delivered=3, spool_storage=spool.payload()),
        now=1_790_000_060.0,
        started_at=1_790_000_000.0,
    )
    assert payload["storage"] == {
        "spool": {"durable": False, "fallbacks": 1, "recreated": 0, "memory_writes": 3},
        "ledger": {"durable": True, "fallbacks": 0, "recreated": 1, "memory_writes": 0},
    }


def test_partial_text_includes_the_word_being_recognized() -> None:
    turn = Turn(
        turn_order=3,
        end_of_turn=False,
        turn_is_formatted=False,
        transcript="turn on",
        end_of_turn_confidence=0.1,
        words=(
            Word("turn", 0, 100, 0.9, True),
            Word("on", 100, 200, 0.9, True),
            Word("the", 200, 250, 0.5, False),
        ),
    )
    payload = strict_loads(partial_payload("kitchen-pi", "sess", turn))
    assert payload == {
        "schema": "edgecap.partial/1",
        "device_id": "kitchen-pi",
        "session_id": "sess",
        "turn_order": 3,
        "text": "turn on the",
        "end_of_turn": False,
    }


def test_hermes_text_captured_has_the_rhasspy_fields() -> None:
    payload = strict_loads(text_captured(final_turn(), now=100.75))
    assert payload == {
        "text": "Turn on the lights.",
        "likelihood": 0.87,
        "seconds": 0.75,
        "siteId": "kitchen-pi",
        "sessionId": "sess:2",
    }
    assert strict_loads(text_captured(final_turn(ended_at=None), now=5.0))["seconds"] == 0.0


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "is the broker running"),
        (socket.gaierror(-2, "Name or service not known"), "check mqtt.host"),
        (TimeoutError(), "timed out"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS listener"),
    ],
)
def test_connect_errors_say_what_to_check(exc: BaseException, needle: str) -> None:
    assert needle in explain_connect_error(exc, "broker.lan", 8883, tls=True)


def test_untrusted_certificate_points_at_ca_file() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "unable to get local issuer certificate"
    line = explain_connect_error(exc, "broker.lan", 8883, tls=True)
    assert "not trusted" in line
    assert "mqtt.ca_file" in line


def test_refused_login_names_the_keys() -> None:
    line = explain_connack("Not authorized", "broker.lan", 1883, "edgecap-kitchen")
    assert "mqtt.username" in line
    assert "mqtt.password_file" in line


# --- configuration ---------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "edgecap.toml"
    path.write_text(BASE + text, encoding="utf-8")
    load_config(path, ENV)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def test_tls_files_without_tls_are_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, '[mqtt]\nca_file = "/etc/ssl/certs/ca-certificates.crt"\n') == [
        "mqtt.ca_file: is used only with mqtt.tls = true; set it (a TLS listener is usually "
        "port 8883) or remove this key"
    ]


def test_unreadable_ca_file_is_reported_by_check_config(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    (problem,) = problems(tmp_path, f'[mqtt]\ntls = true\nca_file = "{bad}"\n')
    assert problem.startswith(f"mqtt.ca_file: cannot load CA certificates from {bad}")


def test_relative_tls_path_and_key_without_cert(tmp_path: Path) -> None:
    found = problems(tmp_path, '[mqtt]\ntls = true\nca_file = "ca.pem"\n')
    assert found == ['mqtt.ca_file: must be an absolute path (got "ca.pem")']
    found = problems(tmp_path, f'[mqtt]\ntls = true\nkey_file = "{tmp_path}/k.pem"\n')
    assert found == ["mqtt.key_file: needs mqtt.cert_file (the client certificate)"]


def test_protocol_and_reconnect_delays(tmp_path: Path) -> None:
    load(tmp_path, "[mqtt]\nprotocol = 5\n")  # a bare number is accepted
    (problem,) = problems(tmp_path, '[mqtt]\nprotocol = "4"\n')
    assert problem.startswith("mqtt.protocol:")
    (problem,) = problems(
        tmp_path, "[mqtt]\nreconnect_min_seconds = 10\nreconnect_max_seconds = 5\n"
    )
    assert (
        problem == "mqtt.reconnect_max_seconds: must be >= mqtt.reconnect_min_seconds (10); got 5"
    )


def test_spool_section_is_validated(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "[spool]\nmax_turns = 0\n")
    assert problem.startswith("spool.max_turns:")
    (problem,) = problems(tmp_path, "[spool]\nmax_tunrs = 5\n")
    assert problem == "spool.max_tunrs: unknown key (did you mean max_turns?)"
