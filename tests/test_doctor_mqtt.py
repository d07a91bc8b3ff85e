"""The doctor's MQTT check against a real mosquitto (down, refusing the credentials, TLS
with the wrong CA, TLS expected, an ACL that drops the test topic), and the token check
against a token service whose TLS certificate is not trusted. Certificates come from a
throwaway CA made with openssl."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgecap.doctor.context import DoctorOptions
from edgecap.doctor.loading import load_doctor_config
from edgecap.doctor.mqtt_check import check_mqtt
from edgecap.doctor.render import render_table
from edgecap.doctor.result import CheckResult, Report
from edgecap.doctor.runner import run_doctor
from edgecap.doctor.token_check import check_token
from tests.daemon_proc import write_config
from tests.harness import MosquittoBroker, TlsListener, free_port

pytestmark = pytest.mark.integration

DEVICE = "mqtt-doc"


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> tuple[Path, Path]:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
        "-subj", f"/CN=edgecap doctor test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    return d / f"{name}.crt", d / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _make_ca(d, "ca-a")
    other_ca, _ = _make_ca(d, "ca-b")
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
        cwd=d,
    )  # fmt: skip
    return Pki(ca, other_ca, d / "server.crt", d / "server.key")


async def doctor_check(
    tmp: Path,
    check: str,
    env: dict[str, str] | None = None,
    step_timeout: float = 2.0,
    **sections: dict[str, Any],
) -> CheckResult:
    """Run one check through the runner with a config made of ``sections``."""
    sections.setdefault("auth", {"token_service_url": "http://127.0.0.1:9/v1/assemblyai"})
    path = write_config(tmp / "edgecap.toml", {"device_id": DEVICE}, sections)
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGECAP_")}
    environ = {**base, "EDGECAP_TOKEN_SERVICE_CREDENTIAL": "team-cred", **(env or {})}
    cfg = load_doctor_config(path, environ, installed_credentials=tmp / "none")
    func = {"mqtt": check_mqtt, "token": check_token}[check]
    report = await run_doctor(cfg, DoctorOptions(timeout=step_timeout), checks=[(check, func)])
    result = report.get(check)
    assert result is not None
    assert report.exit_status == (0 if result.passed else 1)
    return result


def mqtt(port: int, **keys: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, **keys}


# -- plain MQTT ---------------------------------------------------------------------------------


async def test_healthy_broker_round_trip(tmp_path: Path, mqtt_broker: MosquittoBroker) -> None:
    result = await doctor_check(tmp_path, "mqtt", mqtt=mqtt(mqtt_broker.port))
    assert result.result == "pass", result
    assert f"published to and received from edgecap/{DEVICE}/doctor/" in result.detail
    assert result.data["round_trip_ms"] is not None


async def test_broker_down(tmp_path: Path) -> None:
    port = free_port()
    result = await doctor_check(tmp_path, "mqtt", mqtt=mqtt(port))
    assert result.result == "fail"
    assert f"broker 127.0.0.1:{port} refused the TCP connection" in result.detail
    assert "start the broker" in result.fix


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path / "auth", users={"edge": "right-password"})
    try:
        yield broker
    finally:
        broker.stop()


async def test_broker_refuses_the_credentials(tmp_path: Path, auth_broker: MosquittoBroker) -> None:
    result = await doctor_check(
        tmp_path,
        "mqtt",
        env={"EDGECAP_MQTT_PASSWORD": "wrong-password"},
        mqtt=mqtt(auth_broker.port, username="edge"),
    )
    assert result.result == "fail"
    assert "refused the connection" in result.detail
    assert "check mqtt.username and the password" in result.detail
    assert "mqtt.password_file" in result.fix
    assert "wrong-password" not in result.detail + result.fix
    ok = await doctor_check(
        tmp_path,
        "mqtt",
        env={"EDGECAP_MQTT_PASSWORD": "right-password"},
        mqtt=mqtt(auth_broker.port, username="edge"),
    )
    assert ok.result == "pass"
    assert "as 'edge'" in ok.detail


async def test_acl_that_drops_the_test_topic(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite somewhere-else/#\n")
    broker = MosquittoBroker(tmp_path / "acl-broker", extra_lines=[f"acl_file {acl}"])
    try:
        # mosquitto grants the subscription and silently drops the message (MQTT 3.1.1)
        result = await doctor_check(tmp_path, "mqtt", step_timeout=0.8, mqtt=mqtt(broker.port))
    finally:
        broker.stop()
    assert result.result == "fail"
    assert "ACL" in result.detail
    assert f"`topic readwrite edgecap/{DEVICE}/#` before any `user` line" in result.fix


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoBroker]:
    listener = TlsListener(free_port(), pki.ca, pki.cert, pki.key)
    broker = MosquittoBroker(tmp_path / "tls", tls=listener)
    try:
        yield broker
    finally:
        broker.stop()


def tls_port(broker: MosquittoBroker) -> int:
    assert broker.config.tls is not None
    return broker.config.tls.port


async def test_tls_with_the_wrong_ca(tmp_path: Path, tls_broker: MosquittoBroker, pki: Pki) -> None:
    port = tls_port(tls_broker)
    result = await doctor_check(
        tmp_path, "mqtt", mqtt=mqtt(port, tls=True, ca_file=str(pki.other_ca))
    )
    assert result.result == "fail"
    assert "is not trusted" in result.detail
    assert "set mqtt.ca_file to the CA certificate that signed" in result.fix
    ok = await doctor_check(tmp_path, "mqtt", mqtt=mqtt(port, tls=True, ca_file=str(pki.ca)))
    assert ok.result == "pass", render_table_of(ok)
    assert "(TLS, MQTT 3.1.1)" in ok.detail


async def test_plain_client_on_a_tls_listener(tmp_path: Path, tls_broker: MosquittoBroker) -> None:
    result = await doctor_check(tmp_path, "mqtt", mqtt=mqtt(tls_port(tls_broker)))
    assert result.result == "fail"
    assert "MQTT CONNECT" in result.detail
    assert "mqtt.tls = true" in result.fix


async def test_tls_client_on_a_plain_listener(
    tmp_path: Path, mqtt_broker: MosquittoBroker, pki: Pki
) -> None:
    result = await doctor_check(
        tmp_path, "mqtt", mqtt=mqtt(mqtt_broker.port, tls=True, ca_file=str(pki.ca))
    )
    assert result.result == "fail"
    assert "TLS handshake" in result.detail
    assert "mqtt.port must be the broker's TLS listener" in result.fix


@pytest.fixture
async def untrusted_https(pki: Pki) -> AsyncIterator[int]:
    """A TLS server with a certificate from a CA the system does not trust."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert, pki.key)

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0, ssl=context)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_token_service_with_an_untrusted_certificate(
    tmp_path: Path, untrusted_https: int
) -> None:
    url = f"https://127.0.0.1:{untrusted_https}/v1/assemblyai"
    result = await doctor_check(tmp_path, "token", auth={"token_service_url": url})
    assert result.result == "fail"
    assert "TLS certificate" in result.detail
    assert "is not trusted" in result.detail
    assert "device clock" in result.fix


def render_table_of(result: CheckResult) -> str:
    return render_table(Report.of([result]))
