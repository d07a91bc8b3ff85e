"""Everything edgecap publishes on MQTT, wired for the daemon.

- transcripts: spooled on disk, then published at QoS 1, deleted on PUBACK (`outbox.py`);
  the spool file is checked every `STORAGE_CHECK_SECONDS` (deleted? the disk back?) and
  its condition reported to the daemon's status (`report`);
- `availability`, and the retained `stats` (periodic) and Home Assistant discovery,
  published again after every reconnect (`publisher.py`);
- opt-in: `partial` text (QoS 0), Hermes `textCaptured` (QoS 0), discovery re-sent when
  Home Assistant announces itself on `<discovery_prefix>/status`;
- commands (`on_command`): each message on a command topic goes to its handler, on the loop.

All of it runs on the event loop; paho's thread only hands events over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from edgecap.mqtt.discovery import discovery_message
from edgecap.mqtt.hermes import text_captured
from edgecap.mqtt.outbox import TurnOutbox
from edgecap.mqtt.partial import partial_payload
from edgecap.mqtt.publisher import MqttPublisher
from edgecap.mqtt.settings import ServiceSettings
from edgecap.mqtt.spooldb import open_spool
from edgecap.mqtt.stats import DaemonCounters, DeliveryCounters, stats_json, stats_payload
from edgecap.mqtt.topics import ONLINE
from edgecap.providers.turn import Turn
from edgecap.runtime import Deadline
from edgecap.state.db import Report
from edgecap.turns.transcript import TranscriptTurn

log = logging.getLogger(__name__)

DISCOVERY_JITTER_SECONDS = 1.0  # Home Assistant asks for a random delay after its birth
DRAIN_SECONDS = 2.0  # how long a clean stop waits for the last PUBACKs, at most
CONNECT_REPORT_SECONDS = 15.0  # silent connection attempts are reported after this
STOP_SECONDS = 4.0  # a whole stop (a reload reconnecting to another broker, say)
OFFLINE_WAIT_SECONDS = 1.0  # for the broker's PUBACK of `offline`
STOP_THREAD_RESERVE_SECONDS = 0.3  # disconnecting and ending paho's thread
STORAGE_CHECK_SECONDS = 5.0  # spool file still there? disk back? (one stat() when fine)


def _dispatch(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon has exited
        loop.call_soon_threadsafe(fn, *args)


class MqttService:
    def __init__(
        self,
        settings: ServiceSettings,
        counters: Callable[[], DaemonCounters] = DaemonCounters,
        *,
        clock: Callable[[], float] = time.time,
        report: Report | None = None,
    ) -> None:
        self.options = settings
        self.device_id = settings.device_id
        self.topics = settings.topics
        self.publisher = MqttPublisher(settings.connection)
        self.bounds = settings.spool
        self.state_dir = settings.state_dir
        self._counters = counters
        self._clock = clock
        self._report = report  # the spool's status condition (StatusModel.set_condition)
        self.started_at = clock()
        self._outbox: TurnOutbox | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._silence_reported = False
        self._commands: dict[str, Callable[[bytes], None]] = {}

    @property
    def outbox(self) -> TurnOutbox:
        if self._outbox is None:
            raise RuntimeError("MqttService.start() has not been called")
        return self._outbox

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool and connect in the background (call on the event loop)."""
        loop = self._loop = asyncio.get_running_loop()
        outbox = self._outbox = TurnOutbox(
            open_spool(self.state_dir, report=self._spool_condition),
            self.bounds,
            self._publish_spooled,
            schedule=loop.call_soon,
            clock=self._clock,
        )
        p = self.publisher
        p.dispatch = lambda fn, *args: _dispatch(loop, fn, *args)
        p.on_connected = self._connected
        p.on_disconnected = self._disconnected
        p.on_acked = outbox.acked
        p.on_message = self._on_message
        outbox.open()
        if self.options.discovery:
            self._publish_discovery()
            p.subscribe(self.topics.ha_status)
        self.publish_stats()
        p.start()
        self._stats_task = loop.create_task(self._periodic(), name="edgecap-mqtt-stats")
        self._watch_connect()

    async def stop(self, within: float = STOP_SECONDS) -> None:
        """Within `within` seconds: wait for unacknowledged turns (at most half of it),
        publish final stats and `offline`, disconnect. A broker that does not answer (or a
        client stuck in a name lookup) is left behind: what it did not acknowledge stays in
        the spool for the next start."""
        if self._stopped:
            return
        self._stopped = True
        deadline = Deadline(within)
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
        outbox = self._outbox
        if outbox is not None and self.publisher.connected.is_set():
            drained = asyncio.Event()
            outbox.on_drained(drained.set)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), min(DRAIN_SECONDS, deadline.left() / 2))
        if outbox is not None:
            self.publish_stats()
        offline_wait = min(OFFLINE_WAIT_SECONDS, deadline.left(STOP_THREAD_RESERVE_SECONDS))
        stopping = asyncio.ensure_future(asyncio.to_thread(self.publisher.stop, offline_wait))
        try:
            await asyncio.wait_for(asyncio.shield(stopping), deadline.left())
        except TimeoutError:
            log.warning(
                "the MQTT client did not stop within %.1f s (broker or network not answering); "
                "leaving it",
                within,
            )
        if outbox is not None:
            for _ in range(2):  # PUBACKs handed over before paho stopped, then their flush
                await asyncio.sleep(0)
            left = outbox.depth
            if left and outbox.spool.durable:  # else the spool says what is lost, on close
                log.info("%d transcript(s) stay in the spool for the next start", left)
            outbox.close()

    # -- what the daemon publishes -------------------------------------------------------

    def publish_turn(self, turn: TranscriptTurn) -> None:
        """Spool a final turn (durable) and publish it; Hermes too when enabled.

        Also for a speaker revision of a turn published before (`turn.revision` above 0,
        from `edgecap.turns.revisions.SessionTurns.apply`): it goes to `transcript` with the
        same `id` (replacing the earlier payload if that still waits in the spool), not to
        Hermes, where the turn was a voice command already acted on."""
        self.outbox.add(turn.id, self.topics.transcript, turn.to_json(), revision=turn.revision)
        if self.options.hermes and turn.revision == 0:
            self.publisher.publish(
                self.topics.hermes_text_captured, text_captured(turn, self._clock()), qos=0
            )

    def publish_partial(self, session_id: str, turn: Turn) -> None:
        if self.options.partials:
            payload = partial_payload(self.device_id, session_id, turn)
            self.publisher.publish(self.topics.partial, payload, qos=0)

    def on_command(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Subscribe to `topic` (again after every reconnect); each payload goes to
        `handler` on the event loop."""
        self._commands[topic] = handler
        self.publisher.subscribe(topic)

    def publish_stats(self) -> None:
        payload = stats_payload(
            self.device_id,
            self._counters(),
            self.delivery_counters(),
            now=self._clock(),
            started_at=self.started_at,
        )
        self.publisher.publish(self.topics.stats, stats_json(payload), qos=1, retain=True)

    def delivery_counters(self) -> DeliveryCounters:
        outbox = self.outbox
        c = outbox.counters
        return DeliveryCounters(
            spool_depth=outbox.depth,
            spool_evictions=c.evicted,
            delivered=c.delivered,
            rejected=c.rejected,
            mqtt_connects=self.publisher.connects,
            spool_storage=outbox.spool.health.payload(),
        )

    # -- internals -----------------------------------------------------------------------

    def _watch_connect(self) -> None:
        """Say so when a connection attempt gets no answer at all: paho reports refusals
        and errors, but a name lookup or a TCP connect that hangs is silent."""
        if self._loop is not None and not self._stopped:
            failures = self.publisher.failures
            self._loop.call_later(CONNECT_REPORT_SECONDS, self._connect_overdue, failures)

    def _connect_overdue(self, failures_before: int) -> None:
        p = self.publisher
        if self._stopped or p.connected.is_set():
            return
        if p.failures == failures_before:
            level = logging.DEBUG if self._silence_reported else logging.ERROR
            self._silence_reported = True
            log.log(
                level,
                "MQTT: no connection to %s:%s after %.0f s and no answer yet: the name lookup "
                "or the connection hangs (check DNS, the network and mqtt.host); still trying, "
                "transcripts wait in the spool",
                self.options.connection.host,
                self.options.connection.port,
                CONNECT_REPORT_SECONDS,
            )
        self._watch_connect()

    def _disconnected(self) -> None:
        self.outbox.disconnected()
        self._watch_connect()

    def _connected(self) -> None:
        self._silence_reported = False
        self.outbox.connected()
        self.publish_stats()  # the copy re-sent on connect may be from before the outage

    def _publish_spooled(self, topic: str, payload: bytes) -> int | None:
        return self.publisher.publish(topic, payload, qos=1)

    def _publish_discovery(self) -> None:
        topic, payload = discovery_message(
            self.topics, self.options.controls, self.options.currency
        )
        self.publisher.publish(topic, payload, qos=1, retain=True)

    def _spool_condition(self, part: str, line: str | None) -> None:
        """The spool moved to memory or back: the status says so, and the stats at once."""
        if self._report is not None:
            self._report(part, line)
        if self._outbox is not None and self._loop is not None and not self._stopped:
            self._loop.call_soon(self.publish_stats)

    def _on_message(self, topic: str, payload: bytes) -> None:
        handler = self._commands.get(topic)
        if handler is not None and not self._stopped:
            try:
                handler(payload)
            except Exception:  # a command must never take the daemon down
                log.exception("MQTT command on %s failed (an edgecap bug)", topic)
            return
        if topic == self.topics.ha_status and payload.strip() == ONLINE and self._loop:
            delay = random.uniform(0, DISCOVERY_JITTER_SECONDS)  # noqa: S311 - not crypto
            log.info("Home Assistant is online; sending discovery in %.1f s", delay)
            self._loop.call_later(delay, self._publish_discovery)

    async def _periodic(self) -> None:
        await asyncio.gather(self._stats_loop(), self._storage_loop())

    async def _storage_loop(self) -> None:
        while True:
            await asyncio.sleep(STORAGE_CHECK_SECONDS)  # the period itself
            try:
                self.outbox.maintain()
            except (OSError, sqlite3.Error) as exc:  # reported by the spool; keep checking
                log.error("transcript spool: periodic check failed: %s", exc)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.stats_interval_seconds)  # the period itself
            try:
                self.outbox.enforce_bounds()
            except sqlite3.Error as exc:
                log.error("transcript spool: cannot apply its bounds: %s", exc)
            self.publish_stats()
