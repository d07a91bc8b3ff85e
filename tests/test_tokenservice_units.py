"""edgecap-tokens' pure parts: policy decisions with an injected clock, credentials, and
the configuration's validation (keys named, unknown keys refused, secrets only from files,
$CREDENTIALS_DIRECTORY or the environment)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgecap.tokenservice.config import (
    ServiceConfigError,
    load_service_config,
    parse_config,
)
from edgecap.tokenservice.credentials import (
    bearer,
    credential_hash,
    from_upgrade,
    new_credential,
    valid_device_name,
)
from edgecap.tokenservice.policy import (
    Limits,
    MinuteWindow,
    Usage,
    budget_refusal,
    capped_session_seconds,
    rate_refusal,
    seconds_to_midnight,
    session_allowance,
    session_refusal,
)

pytestmark = pytest.mark.unit

DAY = 86_400.0


def test_a_device_over_its_per_minute_limit_waits_until_the_oldest_request_ages_out() -> None:
    limits = Limits(device_per_minute=3, fleet_per_minute=0)
    device, fleet = MinuteWindow(), MinuteWindow()
    for t in (0.0, 10.0, 20.0):
        assert rate_refusal(limits, device, fleet, t) is None
        device.add(t)
        fleet.add(t)
    refused = rate_refusal(limits, device, fleet, 30.0)
    assert refused is not None
    assert (refused.status, refused.code, refused.retry_after) == (429, "rate_limited", 30)
    assert rate_refusal(limits, device, fleet, 60.0) is None  # the request at 0 s aged out


def test_the_fleet_limit_applies_across_devices() -> None:
    limits = Limits(device_per_minute=10, fleet_per_minute=2)
    fleet = MinuteWindow()
    fleet.add(0.0)
    fleet.add(1.0)
    refused = rate_refusal(limits, MinuteWindow(), fleet, 2.0)
    assert refused is not None
    assert refused.code == "fleet_rate_limited"
    assert refused.body() == {"error": refused.message, "code": "fleet_rate_limited"}


def test_zero_means_no_limit() -> None:
    limits = Limits(0, 0, 0, 0, 0, 0)
    window = MinuteWindow()
    for t in range(1000):
        window.add(float(t) / 100)
    assert rate_refusal(limits, window, window, 10.0) is None
    assert budget_refusal(limits, Usage(1e9, 1e9), 0.0) is None
    assert session_refusal(limits, 100, 100) is None
    assert session_allowance(limits, Usage(1e9, 1e9)) == float("inf")


def test_budgets_refuse_until_midnight_utc() -> None:
    limits = Limits(device_daily_seconds=3600, fleet_daily_seconds=10_000)
    wall = 5 * DAY + 80_000.0
    assert budget_refusal(limits, Usage(3599.0, 5000.0), wall) is None
    device = budget_refusal(limits, Usage(3600.0, 5000.0), wall)
    assert device is not None
    assert (device.code, device.retry_after) == ("budget_exhausted", 6400)
    fleet = budget_refusal(limits, Usage(10.0, 10_000.0), wall)
    assert fleet is not None
    assert fleet.code == "fleet_budget_exhausted"
    assert seconds_to_midnight(5 * DAY) == 86_400


def test_concurrent_sessions_per_device_and_fleet() -> None:
    limits = Limits(device_sessions=2, fleet_sessions=5)
    assert session_refusal(limits, 1, 4) is None
    device = session_refusal(limits, 2, 2)
    fleet = session_refusal(limits, 0, 5)
    assert device is not None
    assert device.code == "too_many_sessions"
    assert fleet is not None
    assert fleet.code == "fleet_too_many_sessions"


def test_token_session_length_is_capped_by_policy_and_the_budget_left() -> None:
    limits = Limits(max_session_seconds=1800, device_daily_seconds=3600)
    assert capped_session_seconds(None, limits, Usage()) == 1800
    assert capped_session_seconds(600, limits, Usage()) == 600
    assert capped_session_seconds(10_800, limits, Usage()) == 1800
    assert capped_session_seconds(None, limits, Usage(3000.0)) == 600
    assert capped_session_seconds(None, limits, Usage(3590.0)) == 60  # AssemblyAI's minimum


def test_a_proxied_session_is_allowed_what_is_left_of_the_tighter_budget() -> None:
    limits = Limits(device_daily_seconds=3600, fleet_daily_seconds=10_000)
    assert session_allowance(limits, Usage(3000.0, 9900.0)) == 100.0
    assert session_allowance(limits, Usage(3000.0, 0.0)) == 600.0
    assert session_allowance(limits, Usage(4000.0, 0.0)) == 0.0


def test_credentials_are_random_and_stored_only_as_a_digest() -> None:
    first, second = new_credential(), new_credential()
    assert first != second
    assert first.startswith("ect_")
    assert len(first) >= 40
    digest = credential_hash(first)
    assert len(digest) == 64
    assert first not in digest
    assert credential_hash(first) == digest


def test_a_credential_is_read_from_the_bearer_header_or_the_keypool_subprotocol() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("abc") is None
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None
    assert from_upgrade("Bearer abc", ["keypool-token.xyz"]) == ("abc", None)
    assert from_upgrade(None, ["other", "keypool-token.xyz"]) == ("xyz", "keypool-token.xyz")
    assert from_upgrade(None, ["keypool-token."]) == (None, None)


def test_device_names_are_plain() -> None:
    assert valid_device_name("kitchen-pi_2.local") is None
    assert valid_device_name("") is not None
    assert valid_device_name("a b") is not None
    assert valid_device_name("x" * 65) is not None


def test_the_defaults_serve_on_loopback_with_assemblyai() -> None:
    config = parse_config({})
    assert (config.host, config.port) == ("127.0.0.1", 8700)
    assert config.assemblyai.token_url == "https://streaming.assemblyai.com/v3/token"
    assert config.assemblyai.streaming_url == "wss://streaming.assemblyai.com/v3/ws"
    assert config.openai.enabled is False


def test_problems_name_the_key_and_the_value() -> None:
    with pytest.raises(ServiceConfigError) as caught:
        parse_config(
            {
                "listen": "8700",
                "databse": "x",
                "assemblyai": {"token_url": "ftp://example.com/v3/token"},
                "limits": {"device": {"token_requests_per_minute": -1}},
            }
        )
    problems = "\n".join(caught.value.problems)
    assert 'listen: must be "HOST:PORT"' in problems
    assert '(got "8700")' in problems
    assert "databse: unknown key" in problems
    assert "assemblyai.token_url:" in problems
    assert "limits.device.token_requests_per_minute:" in problems
    assert len(caught.value.problems) == 4


def test_the_api_key_comes_from_a_file_or_the_credentials_directory(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[assemblyai]\napi_key_file = "key"\n')
    (tmp_path / "key").write_text("the-key\n")
    (tmp_path / "key").chmod(0o600)
    loaded = load_service_config(config, {})
    assert loaded.assemblyai_key == "the-key"
    assert "the-key" not in repr(loaded)

    config.write_text("")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "assemblyai-api-key").write_text("from-systemd")
    loaded = load_service_config(config, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert loaded.assemblyai_key == "from-systemd"

    with pytest.raises(ServiceConfigError) as caught:
        load_service_config(config, {})
    assert caught.value.problems[0].startswith("assemblyai.api_key_file: no AssemblyAI API key")


def test_an_inline_key_is_an_unknown_key_and_never_echoed(tmp_path: Path) -> None:
    config = tmp_path / "t.toml"
    config.write_text('[assemblyai]\napi_key = "sk-inline-secret"\n')
    with pytest.raises(ServiceConfigError) as caught:
        load_service_config(config, {})
    assert "assemblyai.api_key: unknown key" in str(caught.value)
    assert "sk-inline-secret" not in str(caught.value)


def test_the_shipped_example_is_valid_and_shows_every_key() -> None:
    import tomllib

    example = Path(__file__).resolve().parents[1] / "config" / "edgecap-tokens.toml"
    text = example.read_text()
    config = parse_config(tomllib.loads(text))
    assert config == parse_config({})  # every value shown is the default
    shown = set(re.findall(r"^#? ?([a-z_]+) = ", text, re.MULTILINE))
    expected = set(type(config).model_fields) - {"assemblyai", "openai", "limits"}
    for section in (config.assemblyai, config.openai, config.limits.device):
        expected |= set(type(section).model_fields)
    assert expected <= shown
