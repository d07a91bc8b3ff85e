"""edgecap-tokens on PostgreSQL (several replicas share one database): the same store
operations as on SQLite, against a throwaway server (skipped, saying why, where Debian's
postgresql package is not installed)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bench.postgres import TempPostgres, available
from edgecap.tokenservice.credentials import credential_hash
from edgecap.tokenservice.policy import utc_day
from edgecap.tokenservice.store import Store
from tests.harness import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(available() is not None, reason=f"no PostgreSQL: {available()}"),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with TempPostgres(free_port()) as pg:
        yield pg.url


def test_two_replicas_share_devices_revocations_and_usage(postgres: str) -> None:
    one, two = Store(postgres), Store(postgres)
    try:
        one.create_schema()
        two.create_schema()  # idempotent: each replica runs it at start
        one.add_device("pg-dev", credential_hash("ect_a"), time.time())
        device = two.authenticate(credential_hash("ect_a"))
        assert device is not None
        day = utc_day(time.time())
        one.record(device.id, day, time.time(), tokens=1, estimated=600.0)
        two.record(device.id, day, time.time(), metered=12.5)
        usage = one.usage(device.id, day, fleet=True)
        assert (usage.device_seconds, usage.fleet_seconds) == (612.5, 612.5)
        assert two.revoke("pg-dev", time.time())
        assert one.authenticate(credential_hash("ect_a")) is None  # at once, everywhere
        row = one.list_devices(day)[0]
        assert (row.state, row.tokens_today) == ("revoked", 1)
    finally:
        one.close()
        two.close()
