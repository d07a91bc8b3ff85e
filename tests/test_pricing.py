"""Cost in money: the price table and `[pricing]`, a budget given in money, and the cost
estimate in the stats' `billing` section (plain inputs, no I/O)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from edgecap.app.wiring import configure_ledger
from edgecap.billing.ledger import Ledger, billing_summary
from tests.test_config import BASE, load, only_problem

pytestmark = pytest.mark.unit

NOON = datetime(2026, 12, 4, 12, 0)


def test_the_estimate_is_billed_time_at_the_model_price_today_and_this_month(
    tmp_path: Path,
) -> None:
    cfg = load(tmp_path, BASE + '[streaming]\nspeech_model = "universal-3-6-pro"\n').config
    ledger = configure_ledger(Ledger(), cfg)
    ledger.record(datetime(2026, 12, 1, 9, 0), billed_seconds=3600, speech_seconds=900)
    ledger.record(NOON, billed_seconds=720, speech_seconds=600)
    summary = billing_summary(ledger, NOON, open_session_seconds=80, gate="voice")
    assert (summary["currency"], summary["price_per_hour"]) == ("USD", 0.45)
    assert summary["today"]["cost"] == pytest.approx(800 / 3600 * 0.45, abs=1e-4)  # 0.10
    assert summary["month"]["cost"] == pytest.approx(4400 / 3600 * 0.45, abs=1e-4)  # 0.55


def test_keyterms_surcharge_own_prices_and_unknown_models(tmp_path: Path) -> None:
    plain = load(tmp_path, BASE).config
    assert plain.price_per_hour == pytest.approx(0.15)  # Universal-Streaming English
    terms = load(tmp_path, BASE + '[streaming]\nkeyterms = ["Zigbee"]\n').config
    assert terms.price_per_hour == pytest.approx(0.19)  # keyterms cost extra there
    pro_terms = '[streaming]\nspeech_model = "universal-3-6-pro"\nkeyterms = ["Zigbee"]\n'
    assert load(tmp_path, BASE + pro_terms).config.price_per_hour == pytest.approx(0.45)
    own = (
        BASE + '[pricing]\ncurrency = "EUR"\n'
        'per_hour = { "assemblyai:universal-streaming-english" = 0.12 }\n'
    )
    cfg = load(tmp_path, own).config
    assert (cfg.price_per_hour, cfg.pricing.currency) == (pytest.approx(0.12), "EUR")
    sync = load(tmp_path, BASE + '[streaming]\nprovider = "assemblyai-sync"\n').config
    assert sync.price_per_hour == pytest.approx(0.30)  # per hour of audio sent
    # a model with no price: no estimate (null), never a made-up number
    whisper = (
        '[auth]\ntoken_service_url = "https://k.example/v1/openai"\n'
        '[streaming]\nprovider = "openai"\n[openai]\nmodel = "gpt-realtime-whisper"\n'
    )
    cfg = load(tmp_path, whisper).config
    assert cfg.price_per_hour is None
    summary = billing_summary(configure_ledger(Ledger(), cfg), NOON, gate="voice")
    assert summary["today"]["cost"] is None


def test_a_budget_in_money_becomes_billed_time_and_the_smaller_budget_counts(
    tmp_path: Path,
) -> None:
    money = BASE + "[session]\ndaily_budget_cost = 0.05\n"  # at $0.15/h: 20 minutes
    assert load(tmp_path, money).config.budget_seconds == pytest.approx(1200)
    both = BASE + "[session]\ndaily_budget_cost = 0.05\ndaily_budget_minutes = 15\n"
    assert load(tmp_path, both).config.budget_seconds == pytest.approx(900)
    assert load(tmp_path, BASE).config.budget_seconds is None


def test_bad_pricing_keys_are_named(tmp_path: Path) -> None:
    assert "pricing.currency" in only_problem(tmp_path, BASE + '[pricing]\ncurrency = "dollars"\n')
    bad_key = BASE + '[pricing]\nper_hour = { "universal-3-6-pro" = 0.4 }\n'
    problem = only_problem(tmp_path, bad_key)
    assert "pricing.per_hour" in problem
    assert '"universal-3-6-pro"' in problem
    whisper = (
        '[auth]\ntoken_service_url = "https://k.example/v1/openai"\n'
        '[streaming]\nprovider = "openai"\n[openai]\nmodel = "gpt-realtime-whisper"\n'
        "[session]\ndaily_budget_cost = 1.0\n"
    )
    problem = only_problem(tmp_path, whisper)
    assert problem.startswith("session.daily_budget_cost")
    assert '"openai:gpt-realtime-whisper"' in problem
