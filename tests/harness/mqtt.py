"""MQTT observers for tests (paho-mqtt 2.x): a collecting subscriber, a retained-message
reader and a one-shot publisher. The real command-line clients are in `mosquitto_cli`."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.strict_json import strict_loads

CONNECT_TIMEOUT_S = 5.0
_ids = itertools.count(1)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    received_at: float = field(default_factory=time.time, compare=False)
    """Wall time the subscriber received it (for latency figures)."""

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        """The payload as strict JSON (UTF-8, no NaN/Infinity): `tests.strict_json`."""
        return strict_loads(self.payload)


Predicate = Callable[[Message], bool]


def _client_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{uuid.uuid4().hex[:8]}"


class MqttCollector:
    """Subscribes (QoS 1 by default) to `topics` and records every message in arrival order.

    `start()` / `__enter__` return once the broker acknowledged the subscriptions. After a
    broker restart the client reconnects and subscribes again; `wait_ready(n)` waits for the
    n-th acknowledged subscription round.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: str | Sequence[str],
        *,
        qos: int = 1,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._ready_rounds = 0
        self._connect_error: str | None = None
        self._async_waiters: list[Callable[[], bool]] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or _client_id("harness-collector"),
            clean_session=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._started = False

    # -- paho callbacks (network thread) ----------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            client.disconnect()  # no reconnect attempts with the same refused credentials
            with self._cond:
                self._connect_error = f"CONNACK refused: {reason_code}"
                self._cond.notify_all()
            return
        client.subscribe([(topic, self.qos) for topic in self.topics])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._cond:
            failed = [str(rc) for rc in reason_codes if rc.is_failure]
            if failed:
                self._connect_error = f"SUBACK refused: {failed}"
            else:
                self._ready_rounds += 1
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), bool(msg.retain), int(msg.qos))
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
            self._async_waiters[:] = [w for w in self._async_waiters if not w()]

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = CONNECT_TIMEOUT_S) -> MqttCollector:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._started = True
        try:
            self.wait_ready(1, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._client.disconnect()
            self._client.loop_stop()

    def wait_ready(self, rounds: int = 1, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Wait until the subscriptions were acknowledged `rounds` times (1 + reconnects)."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._ready_rounds >= rounds or self._connect_error is not None,
                timeout,
            )
            if self._connect_error is not None:
                raise RuntimeError(f"collector on {self.host}:{self.port}: {self._connect_error}")
            if not ok:
                raise TimeoutError(
                    f"collector on {self.host}:{self.port}: {self._ready_rounds} of {rounds} "
                    f"subscription rounds acknowledged after {timeout} s"
                )

    @property
    def ready_rounds(self) -> int:
        with self._cond:
            return self._ready_rounds

    def __enter__(self) -> MqttCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observations -----------------------------------------------------------------------
    @property
    def messages(self) -> list[Message]:
        with self._cond:
            return list(self._messages)

    def on_topic(self, topic_filter: str) -> list[Message]:
        return [m for m in self.messages if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def _describe(self, what: str, timeout: float) -> str:
        seen = ", ".join(f"{m.topic}={m.payload[:60]!r}" for m in self._messages[-20:])
        return f"no {what} within {timeout} s; last messages: [{seen}]"

    def wait_for(self, predicate: Predicate, timeout: float, count: int = 1) -> list[Message]:
        """Block until at least `count` received messages satisfy `predicate`; return them all
        (in arrival order). Raises TimeoutError listing what did arrive."""
        with self._cond:
            matched: list[Message] = []

            def enough() -> bool:
                matched[:] = [m for m in self._messages if predicate(m)]
                return len(matched) >= count

            if not self._cond.wait_for(enough, timeout):
                raise TimeoutError(self._describe(f"{count} matching message(s)", timeout))
            return list(matched)

    def wait_for_count(self, topic_filter: str, n: int, timeout: float) -> list[Message]:
        """Block until `n` messages matched `topic_filter` (wildcards allowed)."""
        return self.wait_for(lambda m: mqtt.topic_matches_sub(topic_filter, m.topic), timeout, n)

    # A timeout argument (not asyncio.timeout) so the error can list what did arrive.
    async def await_for(
        self,
        predicate: Predicate,
        timeout: float,  # noqa: ASYNC109
        count: int = 1,
    ) -> list[Message]:
        """`wait_for` for coroutines: resolved from the paho thread, no thread is parked."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Message]] = loop.create_future()

        def resolve(result: list[Message]) -> None:
            if not future.done():
                future.set_result(result)

        def check() -> bool:  # called with self._cond held
            matched = [m for m in self._messages if predicate(m)]
            if len(matched) < count:
                return False
            loop.call_soon_threadsafe(resolve, matched)
            return True

        with self._cond:
            if not check():
                self._async_waiters.append(check)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            with self._cond:
                raise TimeoutError(
                    self._describe(f"{count} matching message(s)", timeout)
                ) from None
        finally:
            with self._cond:
                if check in self._async_waiters:
                    self._async_waiters.remove(check)

    async def await_count(
        self,
        topic_filter: str,
        n: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[Message]:
        return await self.await_for(
            lambda m: mqtt.topic_matches_sub(topic_filter, m.topic), timeout, n
        )


def read_retained(
    host: str, port: int, topic: str, timeout: float = CONNECT_TIMEOUT_S
) -> bytes | None:
    """The retained payload on `topic` (exact topic), read with a fresh connection, or None.

    Returns without waiting out `timeout` when nothing is retained: after the SUBACK it makes
    one more subscribe round trip; the broker sends retained messages right after the first
    SUBACK, so they arrive before the second one.
    """
    cond = threading.Condition()
    state: dict[str, Any] = {"subacks": 0, "payload": None, "error": None}
    barrier = f"harness/barrier/{uuid.uuid4().hex}"

    def on_connect(
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            client.disconnect()
            with cond:
                state["error"] = f"CONNACK refused: {reason_code}"
                cond.notify_all()
        else:
            client.subscribe(topic, qos=1)

    def on_subscribe(
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with cond:
            state["subacks"] += 1
            cond.notify_all()
        if state["subacks"] == 1:
            client.subscribe(barrier, qos=0)

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with cond:
            if msg.retain and msg.topic == topic and state["payload"] is None:
                state["payload"] = bytes(msg.payload)
                cond.notify_all()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=_client_id("harness-retained"))
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        with cond:
            done = cond.wait_for(
                lambda: state["subacks"] >= 2 or state["error"] is not None, timeout
            )
            if state["error"] is not None:
                raise RuntimeError(f"read_retained({topic!r}): {state['error']}")
            if not done:
                raise TimeoutError(f"read_retained({topic!r}): no SUBACK within {timeout} s")
            payload: bytes | None = state["payload"]
            return payload
    finally:
        client.disconnect()
        client.loop_stop()


def publish(
    host: str,
    port: int,
    topic: str,
    payload: bytes | str,
    *,
    qos: int = 1,
    retain: bool = False,
    timeout: float = CONNECT_TIMEOUT_S,
) -> None:
    """Publish one message with paho and wait for its PUBACK (QoS 1) / write (QoS 0)."""
    connack: list[ReasonCode] = []
    connected = threading.Event()

    def on_connect(
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        connack.append(reason_code)
        connected.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=_client_id("harness-pub"))
    client.on_connect = on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise TimeoutError(f"no CONNACK from {host}:{port} within {timeout} s")
        if connack[0].is_failure:
            raise RuntimeError(f"publish to {topic!r}: CONNACK refused: {connack[0]}")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic!r} not acknowledged within {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()
