"""A short-lived MQTT round trip (paho adapter): connect with the configured credentials
and TLS, subscribe to a test topic, publish to it, and receive the message back.

Blocking; run it in a thread. Each stage waits at most ``timeout`` seconds. The client id
differs from the daemon's, so a running daemon is not disconnected by the probe.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgecap.mqtt.settings import TlsSettings, TlsSetupError, tls_context

Stage = Literal["setup", "connect", "closed", "connack", "subscribe", "publish", "receive", "done"]


@dataclass(frozen=True)
class MqttProbeSettings:
    host: str
    port: int
    client_id: str
    topic: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    timeout: float = 5.0


@dataclass(frozen=True)
class MqttProbeOutcome:
    """``stage`` is where the round trip stopped ("done" when it completed); "setup" means
    the TLS files cannot be used (``error`` is a ``TlsSetupError``), "closed" means
    the broker closed the connection before answering CONNECT, "connack" that it refused
    (``reason``) or never answered (``error``)."""

    stage: Stage
    error: BaseException | None = None
    reason: str = ""
    connect_ms: int | None = None
    round_trip_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.stage == "done"


@dataclass
class _State:
    connack: threading.Event = field(default_factory=threading.Event)
    suback: threading.Event = field(default_factory=threading.Event)
    received: threading.Event = field(default_factory=threading.Event)
    connack_reason: ReasonCode | None = None
    disconnect_reason: str = ""
    suback_reasons: list[ReasonCode] = field(default_factory=list)
    publish_reason: ReasonCode | None = None


def _client(settings: MqttProbeSettings, state: _State, payload: bytes) -> mqtt.Client:
    version = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=version,
        reconnect_on_failure=False,
    )
    client.connect_timeout = settings.timeout
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        client.tls_set_context(tls_context(settings.tls))  # TlsSetupError: unusable files
        client.tls_insecure_set(settings.tls.insecure)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: ReasonCode, p: Any) -> None:
        state.connack_reason = reason
        state.connack.set()

    def on_disconnect(c: mqtt.Client, u: Any, flags: Any, reason: ReasonCode, p: Any) -> None:
        state.disconnect_reason = str(reason)
        state.connack.set()  # wakes a wait for a CONNACK that will never come
        state.suback.set()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, codes: list[ReasonCode], p: Any) -> None:
        state.suback_reasons = list(codes)
        state.suback.set()

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: ReasonCode, p: Any) -> None:
        state.publish_reason = reason

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == settings.topic and message.payload == payload:
            state.received.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    return client


def probe_mqtt(settings: MqttProbeSettings) -> MqttProbeOutcome:
    """Connect, subscribe, publish, receive; the outcome says where it stopped and why."""
    state = _State()
    payload = f"edgecap doctor {secrets.token_hex(8)}".encode()
    try:
        client = _client(settings, state, payload)
    except TlsSetupError as exc:
        return MqttProbeOutcome("setup", error=exc)
    t = settings.timeout
    started = time.monotonic()
    try:
        client.connect(settings.host, settings.port, keepalive=max(5, int(t * 2)))
    except (OSError, ValueError) as exc:  # ssl.SSLError and socket errors are OSErrors
        return MqttProbeOutcome("connect", error=exc)
    client.loop_start()
    try:
        if not state.connack.wait(t):
            return MqttProbeOutcome("connack", error=TimeoutError(f"no CONNACK within {t:g} s"))
        reason = state.connack_reason
        if reason is None:
            return MqttProbeOutcome("closed", reason=state.disconnect_reason)
        if reason.is_failure:
            return MqttProbeOutcome("connack", reason=str(reason))
        connect_ms = round((time.monotonic() - started) * 1000)
        round_trip_started = time.monotonic()
        client.subscribe(settings.topic, qos=1)
        if not state.suback.wait(t):
            return MqttProbeOutcome("subscribe", error=TimeoutError(f"no SUBACK within {t:g} s"))
        failures = [code for code in state.suback_reasons if code.is_failure]
        if failures or not state.suback_reasons:
            why = str(failures[0]) if failures else state.disconnect_reason or "no SUBACK"
            return MqttProbeOutcome("subscribe", reason=why, connect_ms=connect_ms)
        info = client.publish(settings.topic, payload, qos=1)
        try:
            info.wait_for_publish(t)
        except (RuntimeError, ValueError) as exc:
            return MqttProbeOutcome("publish", error=exc, connect_ms=connect_ms)
        if not info.is_published():
            return MqttProbeOutcome(
                "publish", error=TimeoutError(f"no PUBACK within {t:g} s"), connect_ms=connect_ms
            )
        if state.publish_reason is not None and state.publish_reason.is_failure:
            return MqttProbeOutcome(
                "publish", reason=str(state.publish_reason), connect_ms=connect_ms
            )
        if not state.received.wait(t):
            return MqttProbeOutcome("receive", connect_ms=connect_ms)
        round_trip_ms = round((time.monotonic() - round_trip_started) * 1000)
        return MqttProbeOutcome("done", connect_ms=connect_ms, round_trip_ms=round_trip_ms)
    finally:
        client.disconnect()
        client.loop_stop()
