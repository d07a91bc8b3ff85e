"""Check 6: MQTT: connect with the configured credentials and TLS, then publish to and
receive from a test topic under the device's prefix; failures reported by cause."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from edgecap.app import wiring
from edgecap.doctor.context import DoctorContext
from edgecap.doctor.explain import network_advice, network_kind
from edgecap.doctor.mqtt_probe import MqttProbeOutcome, MqttProbeSettings, probe_mqtt
from edgecap.doctor.result import CheckResult, failed, passed, skipped
from edgecap.mqtt.errors import explain_connack, explain_connect_error

CHECK = "mqtt"


def probe_settings(ctx: DoctorContext) -> MqttProbeSettings | None:
    mqtt = ctx.cfg.mqtt
    if mqtt is None:
        return None
    tls = wiring.tls_settings(mqtt)  # as the daemon builds it
    nonce = secrets.token_hex(4)
    return MqttProbeSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=f"{mqtt.effective_client_id(ctx.cfg.device_id)}-doctor-{nonce}",
        topic=f"{mqtt.prefix}/{ctx.cfg.device_id}/doctor/{nonce}",
        username=mqtt.username,
        password=ctx.cfg.secrets.mqtt_password,
        tls=tls,
        protocol=mqtt.protocol,
        timeout=ctx.options.mqtt_timeout,
    )


def _acl_fix(s: MqttProbeSettings) -> str:
    prefix = s.topic.rsplit("/doctor/", 1)[0]
    rule = f"`topic readwrite {prefix}/#`"
    where = (
        f"after `user {s.username}`"
        if s.username
        else "before any `user` line (that part applies to anonymous clients)"
    )
    who = repr(s.username) if s.username else "anonymous clients"
    return (
        f"allow {who} to publish and subscribe under {prefix}/# in the broker's ACL "
        f"(mosquitto acl_file: {rule} {where})"
    )


def judge(outcome: MqttProbeOutcome, s: MqttProbeSettings) -> CheckResult:
    """The verdict on a probe (no I/O)."""
    where = f"{s.host}:{s.port}"
    data: dict[str, Any] = {
        "broker": where,
        "tls": s.tls is not None,
        "protocol": s.protocol,
        "username": s.username,
        "topic": s.topic,
        "stage": outcome.stage,
        "connect_ms": outcome.connect_ms,
        "round_trip_ms": outcome.round_trip_ms,
    }
    if outcome.ok:
        how = f"{'TLS' if s.tls else 'plain TCP'}, MQTT {s.protocol}"
        who = f" as {s.username!r}" if s.username else " anonymously"
        return passed(
            CHECK,
            f"connected to {where} ({how}){who} in {outcome.connect_ms} ms; published to and "
            f"received from {s.topic} in {outcome.round_trip_ms} ms",
            **data,
        )
    if outcome.stage == "setup":
        return failed(
            CHECK,
            str(outcome.error),
            "point the key at a readable PEM file (the CA that signed the broker's "
            "certificate; the client certificate and its key if the broker asks for one)",
            **data,
        )
    if outcome.stage == "connect" and outcome.error is not None:
        detail = explain_connect_error(outcome.error, s.host, s.port, s.tls is not None)
        kind = network_kind(outcome.error)
        if s.tls is not None and isinstance(outcome.error, ConnectionResetError | EOFError):
            kind = "tls"  # cut off in the handshake: a plain listener does not speak TLS
            detail += " during the TLS handshake: the port does not seem to speak TLS"
        if kind == "tls_verify":
            fix = (
                "set mqtt.ca_file to the CA certificate that signed the broker's certificate "
                "(ask the broker's admin), connect with the host name in the certificate, and "
                "check the device clock (`date`)"
            )
        elif kind == "tls":
            fix = (
                "mqtt.port must be the broker's TLS listener (often 8883) when TLS is on, and "
                "the plain listener (often 1883) when it is off; a client certificate goes in "
                "mqtt.cert_file/mqtt.key_file"
            )
        elif kind == "refused":
            fix = (
                "start the broker (e.g. `systemctl status mosquitto` on its host) or fix "
                "mqtt.host/mqtt.port"
            )
        else:
            fix = network_advice(kind, "MQTT broker", where, "mqtt.host/mqtt.port").fix
        return failed(CHECK, detail, fix, **data)
    if outcome.stage == "connack" and outcome.error is None:
        detail = explain_connack(outcome.reason, s.host, s.port, s.client_id)
        refused = outcome.reason.lower()
        if any(w in refused for w in ("authorized", "user name", "password")):
            return failed(
                CHECK,
                detail,
                "set mqtt.username and put the password the broker expects in "
                "mqtt.password_file (or $CREDENTIALS_DIRECTORY/mqtt-password); on mosquitto "
                "the broker's admin sets it with `mosquitto_passwd`",
                **data,
            )
        return failed(CHECK, detail, "the broker's log says why it refused this client", **data)
    if outcome.stage in ("connack", "closed"):
        what = (
            "closed the connection before answering"
            if outcome.stage == "closed"
            else ("did not answer")
        )
        listener = "a plain MQTT listener" if s.tls is None else "an MQTT listener with TLS"
        hint = (
            "if that port is a TLS listener, turn TLS on (mqtt.tls = true, mqtt.ca_file)"
            if s.tls is None
            else "check that mqtt.port is the broker's TLS listener"
        )
        return failed(
            CHECK,
            f"the server at {where} {what} MQTT CONNECT: it is not {listener}, or not an "
            "MQTT broker at all",
            f"{hint}; the broker's log tells what it received",
            **data,
        )
    if outcome.stage == "subscribe":
        return failed(
            CHECK,
            f"connected, but the broker refused the subscription to {s.topic} "
            f"({outcome.error or outcome.reason}): its ACL denies reading this topic",
            _acl_fix(s),
            **data,
        )
    if outcome.stage == "publish":
        return failed(
            CHECK,
            f"connected, but publishing to {s.topic} failed ({outcome.error or outcome.reason})",
            _acl_fix(s),
            **data,
        )
    return failed(
        CHECK,
        f"published to {s.topic} but did not receive it back within {s.timeout:g} s: the "
        "broker's ACL drops this client's messages"
        + (" (MQTT 3.1.1 reports no error for that)" if s.protocol == "3.1.1" else ""),
        _acl_fix(s),
        **data,
    )


async def check_mqtt(ctx: DoctorContext) -> CheckResult:
    settings = probe_settings(ctx)
    if settings is None:
        return skipped(CHECK, ctx.cfg.unavailable("mqtt"))
    outcome = await asyncio.to_thread(probe_mqtt, settings)
    return judge(outcome, settings)
