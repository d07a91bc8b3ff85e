"""MQTT commands without a broker: the mute and `set` parsers, validation by the config's
own rules, the overlay in the state directory, `check-config --effective`, and a seeded
fuzz of the whole command path (any payload: a plan or an error naming the problem)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from edgecap.app.control import SettingsPlan, plan_settings, read_mute
from edgecap.config import Config, ConfigError, load_config
from edgecap.config import overlay as ov
from edgecap.config.check import check_config_command
from edgecap.mqtt.commands import CommandError, parse_mute, parse_settings, result_payload
from tests.strict_json import strict_loads
from tests.test_config import BASE, ENV, write

pytestmark = pytest.mark.unit


def config(tmp_path: Path, extra: str = "") -> Config:
    text = f'state_dir = "{tmp_path / "state"}"\n' + BASE + extra
    (tmp_path / "state").mkdir(exist_ok=True)
    return load_config(write(tmp_path, text), ENV).config


def test_mute_payloads() -> None:
    assert parse_mute(b"ON") is True
    assert parse_mute(b" off\n") is False
    for bad in (b"banana", b"", b"\xff\xfe", b"1", b"ON OFF"):
        error = parse_mute(bad)
        assert isinstance(error, CommandError), bad


def test_saved_mute_wins_over_start_muted(tmp_path: Path) -> None:
    assert read_mute(tmp_path, start_muted=True) is True  # nothing saved yet
    (tmp_path / "mute").write_text("OFF\n")
    assert read_mute(tmp_path, start_muted=True) is False
    (tmp_path / "mute").write_text("ON\n")
    assert read_mute(tmp_path, start_muted=False) is True
    (tmp_path / "mute").write_text("garbage")
    assert read_mute(tmp_path, start_muted=True) is True


def test_set_command_shapes() -> None:
    known = ov.SETTINGS
    cmd = parse_settings(b'{"keyterms": " Kubernetes, edgecap ,", "gate": null}', known)
    assert not isinstance(cmd, CommandError)
    assert cmd.changes == {"keyterms": ["Kubernetes", "edgecap"]}
    assert cmd.resets == ("gate",)
    for bad, key in (
        (b"[1, 2]", None),
        (b"{}", None),
        (b"not json", None),
        (b'{"min_turn_silence": NaN}', None),
        (b'{"volume": 3}', "volume"),
        (b"{" * 100_000, None),
    ):
        error = parse_settings(bad, known)
        assert isinstance(error, CommandError), bad
        assert error.key == key


def test_a_bad_value_is_refused_naming_the_key_and_the_value(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    error = plan_settings(cfg, {}, b'{"keyterms": ["fine"], "min_turn_silence": 20}')
    assert isinstance(error, CommandError)
    assert error.key == "min_turn_silence"
    assert error.value == 20
    assert "endpointing.min_turn_silence" in error.message
    assert "20" in error.message
    reply = strict_loads(result_payload(False, request=error.request, error=error))
    assert reply["ok"] is False
    assert (reply["key"], reply["value"]) == ("min_turn_silence", 20)
    # a rule spanning two keys (max below min), checked as the file would be
    error = plan_settings(cfg, {"min_turn_silence": 800}, b'{"max_turn_silence": 500}')
    assert isinstance(error, CommandError)
    assert error.key == "max_turn_silence"
    # a model that is not one
    error = plan_settings(cfg, {}, b'{"speech_model": "whisper-9"}')
    assert isinstance(error, CommandError)
    assert "whisper-9" in error.message


def test_a_good_command_plans_the_config_and_overlay(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[endpointing]\nmin_turn_silence = 400\n")
    plan = plan_settings(cfg, {}, b'{"keyterms": ["edgecap"], "max_turn_silence": 2000}')
    assert isinstance(plan, SettingsPlan)
    assert plan.config.streaming.keyterms == ("edgecap",)
    assert plan.config.endpointing.max_turn_silence == 2000
    assert plan.config.endpointing.min_turn_silence == 400  # the file's value stays
    assert plan.overlay == {"keyterms": ["edgecap"], "max_turn_silence": 2000}
    # null puts a setting back to the file's value
    again = plan_settings(cfg, plan.overlay, b'{"keyterms": null}')
    assert isinstance(again, SettingsPlan)
    assert again.config.streaming.keyterms == ()
    assert again.overlay == {"max_turn_silence": 2000}


def test_overlay_survives_on_disk_and_a_stale_value_is_dropped(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    state = cfg.state_dir
    ov.write_overlay(state, {"gate": "always", "min_turn_silence": 300})
    overlay, problems = ov.read_overlay(state)
    assert problems == []
    merged, kept, dropped = ov.effective(cfg, overlay)
    assert merged.session.gate == "always"
    assert kept == overlay
    assert dropped == []
    # the file now sets a max below the saved min: that one value is dropped, with a warning
    cfg2 = config(tmp_path, "[endpointing]\nmin_turn_silence = 100\nmax_turn_silence = 200\n")
    merged, kept, dropped = ov.effective(cfg2, overlay)
    assert kept == {"gate": "always"}
    assert merged.endpointing.min_turn_silence == 100
    assert "min_turn_silence" in dropped[0]
    # a damaged file counts as empty, and says so
    (state / ov.OVERLAY_FILE).write_text("{broken")
    assert ov.read_overlay(state)[0] == {}
    assert ov.read_overlay(state)[1]


def test_check_config_effective_shows_where_each_value_comes_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, "[endpointing]\nmin_turn_silence = 400\n")
    ov.write_overlay(cfg.state_dir, {"keyterms": ["edgecap"]})
    assert check_config_command(str(tmp_path / "edgecap.toml"), ENV, effective=True) == 0
    out = capsys.readouterr().out
    assert 'streaming.keyterms = ["edgecap"]  (MQTT)' in out
    assert "endpointing.min_turn_silence = 400  (file)" in out
    assert (tmp_path / "edgecap.toml").read_text().count("keyterms") == 0  # the file stays


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 49, 50, 400, 10_000, 10_001, 2**63, -(2**70)])
    if kind == 3:
        return rng.choice([0.0, 0.4, 1.0, 1.5, -0.1, 1e308, 5e-324, 399.5])
    if kind == 4:
        alphabet = "aZ,  é\u0000\ud7ff\n\"'{}[]voicealways-universal-streaming-english"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
    if kind == 5:
        return rng.choice(["voice", "always", "universal-streaming-english", "u3-rt-pro", ""])
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    return {"k": _random_value(rng, depth + 1)}


def _random_payload(rng: random.Random) -> bytes:
    if rng.random() < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    names = [*ov.SETTINGS, "volume", ""]
    body = {rng.choice(names): _random_value(rng) for _ in range(rng.randrange(0, 4))}
    text = json.dumps(body)
    if rng.random() < 0.1:
        text = text[: rng.randrange(len(text) + 1)]  # cut short
    return text.encode()


def test_fuzz_no_payload_escapes_the_command_path(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    rng = random.Random(18)
    outcomes = {"plan": 0, "error": 0}
    for _ in range(600):
        payload = _random_payload(rng)
        result = plan_settings(cfg, {}, payload)  # must not raise
        if isinstance(result, SettingsPlan):
            outcomes["plan"] += 1
            assert set(result.overlay) <= set(ov.SETTINGS)
            saved = json.loads(json.dumps(result.overlay, allow_nan=False))
            ov.apply(cfg, saved)  # the overlay it saves loads again
        else:
            outcomes["error"] += 1
            assert result.message
            reply = strict_loads(result_payload(False, request=result.request, error=result))
            assert reply["ok"] is False
    assert outcomes["plan"] > 10  # the generator reaches valid commands too
    assert outcomes["error"] > 100


def test_overlay_apply_refuses_unknown_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ov.apply(config(tmp_path), {"device_id": "other"})
