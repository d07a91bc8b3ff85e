"""Devices and their daily usage in SQLite or PostgreSQL (SQLAlchemy Core, synchronous).

The state replicas must share lives here: devices (a credential's SHA-256, never the
credential), the allow/deny switch, revocation, and each device's usage per UTC day
(tokens minted, billed seconds metered by the proxy or the Sync forward, and billed seconds
estimated from tokens' maximum session durations). Every request reads the device row, so a
revocation or a deny takes effect on the next request on every replica. The server calls
these methods from worker threads (`asyncio.to_thread`); SQLAlchemy's pool gives each its
own connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from edgecap.tokenservice.policy import Usage

metadata = sa.MetaData()
devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("credential_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
)
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id"), primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("tokens", sa.Integer, nullable=False, default=0),
    sa.Column("requests", sa.Integer, nullable=False, default=0),
    sa.Column("metered_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("estimated_seconds", sa.Float, nullable=False, default=0.0),
    sa.Index("usage_by_day", "day"),
)


class DeviceExistsError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Device:
    id: int
    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class DeviceRow:
    name: str
    state: str  # "active", "denied", "revoked"
    created_at: float
    last_used_at: float | None
    tokens_today: int
    metered_seconds_today: float
    estimated_seconds_today: float


def database_url(database: str) -> str:
    """A SQLAlchemy URL: a path is a SQLite file; postgresql:// uses psycopg 3."""
    if database.startswith("postgresql://"):
        return "postgresql+psycopg://" + database.removeprefix("postgresql://")
    if "://" in database:
        return database
    return "sqlite:///" + str(Path(database))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    def __init__(self, database: str, *, pool_size: int = 8) -> None:
        url = database_url(database)
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(url, pool_size=pool_size, max_overflow=0)
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(
                url, pool_size=pool_size, max_overflow=4, pool_pre_ping=True
            )
        self._insert: Callable[..., Any] = sqlite.insert if self.is_sqlite else postgresql.insert
        # SQLite takes one writer at a time and makes the others sleep and retry (busy
        # timeout, up to 100 ms a nap): queueing the writers here is faster and fairer.
        self._writing: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.select(devices.c.id).limit(1))  # the schema is there too

    # -- administration (the CLI) ----------------------------------------------------------

    def add_device(self, name: str, digest: str, now: float) -> None:
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(devices.c.id).where(devices.c.name == name)).first()
            if found is not None:
                raise DeviceExistsError(name)
            conn.execute(
                devices.insert().values(
                    name=name, credential_hash=digest, enabled=True, created_at=now
                )
            )

    def _update(self, name: str, **values: Any) -> bool:
        with self._writing, self.engine.begin() as conn:
            result = conn.execute(devices.update().where(devices.c.name == name).values(**values))
            return bool(result.rowcount)

    def rotate(self, name: str, digest: str) -> bool:
        return self._update(name, credential_hash=digest, revoked_at=None)

    def revoke(self, name: str, now: float) -> bool:
        return self._update(name, credential_hash=None, revoked_at=now)

    def set_enabled(self, name: str, enabled: bool) -> bool:
        return self._update(name, enabled=enabled)

    def list_devices(self, day: int) -> list[DeviceRow]:
        joined = devices.outerjoin(
            usage, sa.and_(usage.c.device_id == devices.c.id, usage.c.day == day)
        )
        query = sa.select(
            devices, usage.c.tokens, usage.c.metered_seconds, usage.c.estimated_seconds
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query.select_from(joined).order_by(devices.c.name)).all()
        return [
            DeviceRow(
                name=r.name,
                state="revoked"
                if r.credential_hash is None
                else "active"
                if r.enabled
                else "denied",
                created_at=r.created_at,
                last_used_at=r.last_used_at,
                tokens_today=r.tokens or 0,
                metered_seconds_today=r.metered_seconds or 0.0,
                estimated_seconds_today=r.estimated_seconds or 0.0,
            )
            for r in rows
        ]

    # -- the request path ------------------------------------------------------------------

    def authenticate(self, digest: str) -> Device | None:
        with self.engine.connect() as conn:
            return self._device(conn, digest)

    @staticmethod
    def _device(conn: sa.Connection, digest: str) -> Device | None:
        query = sa.select(devices.c.id, devices.c.name, devices.c.enabled).where(
            devices.c.credential_hash == digest
        )
        row = conn.execute(query).first()
        return None if row is None else Device(row.id, row.name, bool(row.enabled))

    def device_and_usage(
        self, digest: str, day: int, *, fleet: bool
    ) -> tuple[Device | None, Usage]:
        """The device holding the credential with this digest and its usage today (one
        connection, one thread hop on the request path)."""
        with self.engine.connect() as conn:
            device = self._device(conn, digest)
            if device is None:
                return None, Usage()
            return device, self._usage(conn, device.id, day, fleet=fleet)

    def is_active(self, device_id: int) -> bool:
        query = sa.select(devices.c.enabled, devices.c.credential_hash).where(
            devices.c.id == device_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return row is not None and bool(row.enabled) and row.credential_hash is not None

    def usage(self, device_id: int, day: int, *, fleet: bool) -> Usage:
        with self.engine.connect() as conn:
            return self._usage(conn, device_id, day, fleet=fleet)

    @staticmethod
    def _usage(conn: sa.Connection, device_id: int, day: int, *, fleet: bool) -> Usage:
        billed = usage.c.metered_seconds + usage.c.estimated_seconds
        mine = conn.execute(
            sa.select(billed).where(usage.c.device_id == device_id, usage.c.day == day)
        ).scalar()
        total = (
            conn.execute(sa.select(sa.func.sum(billed)).where(usage.c.day == day)).scalar()
            if fleet
            else 0.0
        )
        return Usage(float(mine or 0.0), float(total or 0.0))

    def record(
        self,
        device_id: int,
        day: int,
        now: float,
        *,
        tokens: int = 0,
        requests: int = 1,
        metered: float = 0.0,
        estimated: float = 0.0,
    ) -> None:
        """Add to the device's usage today (one upsert) and mark it used."""
        values = {
            "device_id": device_id,
            "day": day,
            "tokens": tokens,
            "requests": requests,
            "metered_seconds": metered,
            "estimated_seconds": estimated,
        }
        stmt = self._insert(usage).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[usage.c.device_id, usage.c.day],
            set_={
                "tokens": usage.c.tokens + tokens,
                "requests": usage.c.requests + requests,
                "metered_seconds": usage.c.metered_seconds + metered,
                "estimated_seconds": usage.c.estimated_seconds + estimated,
            },
        )
        with self._writing, self.engine.begin() as conn:
            conn.execute(stmt)
            if requests:
                conn.execute(
                    devices.update().where(devices.c.id == device_id).values(last_used_at=now)
                )
