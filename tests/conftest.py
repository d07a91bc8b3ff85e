"""Shared fixtures: a test-owned mosquitto broker, an ALSA capture device fed through a FIFO,
and the speech fixtures. Helpers live in `tests.harness`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import AlsaFifoSource, MosquittoBroker, SpeechFixture, load_manifest


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto on 127.0.0.1 and a free port, stopped at teardown (even on failure)."""
    broker = MosquittoBroker(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def alsa_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlsaFifoSource]:
    """A started FIFO-fed capture device `testcap`; its environment is applied to this
    process (for in-process capture) and is in `alsa_source.env` for subprocesses."""
    source = AlsaFifoSource(tmp_path).start()
    for key, value in source.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield source
    finally:
        source.stop()


@pytest.fixture(scope="session")
def speech_fixtures() -> list[SpeechFixture]:
    return load_manifest()


CATEGORIES = ("unit", "integration", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one category, so `-m unit` (seconds), `-m integration`
    and `-m faults` (the fault matrix) split the suite without overlap."""
    wrong = [
        item.nodeid
        for item in items
        if len({m.name for m in item.iter_markers() if m.name in CATEGORIES}) != 1
    ]
    if wrong:
        raise pytest.UsageError(
            f"mark each test with exactly one of {', '.join(CATEGORIES)} "
            f"(module `pytestmark` or the test itself): {', '.join(wrong[:5])}"
        )
