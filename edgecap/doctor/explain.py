"""Causes and fixes: what an observed failure means and what the user should do (no I/O).

The adapters already describe a failure in one line (``TokenError``, ``SessionFailed`` with
its ``Classified``, ``explain_device_error``); the doctor shows that line as the detail and
adds the fix from the tables here, which know the configuration keys involved.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from edgecap.config.urls import V3_STREAMING_URL
from edgecap.providers.failures import Classified, ErrorClass

NetworkKind = Literal["dns", "refused", "tls_verify", "tls", "timeout", "unreachable", "other"]


@dataclass(frozen=True)
class Advice:
    cause: str
    fix: str


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def network_kind(exc: BaseException) -> NetworkKind:
    """What kind of network failure an exception (or one it was raised from) is."""
    texts = []
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return "tls_verify"
        if isinstance(e, socket.gaierror):
            return "dns"
        if isinstance(e, ConnectionRefusedError):
            return "refused"
        texts.append(f"{type(e).__name__} {e}".lower())
    text = " ".join(texts)
    if "certificate_verify_failed" in text or "certificate verify failed" in text:
        return "tls_verify"
    if "ssl" in text or "tls" in text or "wrong_version_number" in text:
        return "tls"
    if any(
        s in text
        for s in (
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "no address associated",
            "getaddrinfo",
        )
    ):
        return "dns"
    if "connection refused" in text or "errno 111" in text:
        return "refused"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "unreachable" in text or "no route to host" in text:
        return "unreachable"
    return "other"


def network_advice(kind: NetworkKind, what: str, where: str, url_key: str) -> Advice:
    """Cause and fix for a network failure reaching ``what`` at ``where`` (host:port/URL)."""
    if kind == "dns":
        return Advice(
            f"the host name of the {what} ({where}) cannot be resolved (DNS)",
            f"check the host name in {url_key} for typos, and the device's DNS "
            "(/etc/resolv.conf, `getent hosts HOST`)",
        )
    if kind == "refused":
        return Advice(
            f"nothing accepts connections at {where}: the {what} is down or the port is wrong",
            f"start the {what}, or fix the host and port in {url_key}",
        )
    if kind == "tls_verify":
        return Advice(
            f"the {what}'s TLS certificate at {where} is not trusted (wrong CA, wrong host "
            "name, expired, or the device's clock is wrong)",
            "check the device clock (`date`; certificates look invalid when it is off), "
            "install the CA that signed the server certificate, and use the host name the "
            f"certificate was issued for in {url_key}",
        )
    if kind == "tls":
        return Advice(
            f"the TLS handshake with the {what} at {where} failed (is that port TLS?)",
            f"use https:// / wss:// only for TLS ports, and the right port in {url_key}",
        )
    if kind == "timeout":
        return Advice(
            f"the {what} at {where} did not answer in time",
            "check the network path (firewall, proxy, Wi-Fi) and that the host is right; "
            "run the doctor with a longer --timeout for a slow link",
        )
    if kind == "unreachable":
        return Advice(
            f"the network to the {what} at {where} is unreachable",
            "check the device's network connection and routes (`ip route`)",
        )
    return Advice(f"cannot reach the {what} at {where}", f"check {url_key} and the network")


# -- token source -----------------------------------------------------------------------------


def token_fix(source: str, status: int | None, kind: str, credential_source: str) -> str:
    """What to do about a failed token request (``TokenError.status`` and ``.kind``)."""
    where = f" (the one in use comes from {credential_source})" if credential_source else ""
    if kind == "malformed":
        return (
            "auth.token_service_url does not point at a KeyPool-compatible token service: give "
            "the service's base URL (edgecap appends /v3/token), e.g. "
            "https://keypool.example.com/v1/assemblyai"
        )
    if source != "token service":
        return {
            401: "put a valid AssemblyAI API key in auth.api_key_file"
            f"{where}; if what you have is a team token for a token service, set "
            'auth.mode = "token_service" and auth.token_service_url instead',
            403: "this AssemblyAI account may not use streaming: check its plan and balance "
            "in the AssemblyAI dashboard",
            429: "wait a minute and run the doctor again (edgecap backs off by itself)",
        }.get(status or 0, "try again later; if it persists check AssemblyAI's status page")
    fixes = {
        400: "the token service rejected the parameters: keep auth.token_expires_in_seconds "
        "within 1..600",
        401: "put the team's current token-service credential in auth.credential_file or "
        f"$CREDENTIALS_DIRECTORY/token-service-credential{where}; it is the team token, not "
        "an AssemblyAI API key; ask the token-service admin whether it was revoked",
        403: "the credential is valid but not allowed to use AssemblyAI: ask the token-service "
        "admin to grant it, and check that auth.token_service_url is the AssemblyAI service "
        "path (e.g. .../v1/assemblyai)",
        404: "auth.token_service_url has no token endpoint: give the base URL that edgecap "
        "appends /v3/token to, e.g. https://keypool.example.com/v1/assemblyai",
        429: "the token service limits this device's requests: wait and run the doctor again; "
        "if it persists ask the admin for a higher limit (edgecap backs off by itself)",
        502: "the token service could not reach AssemblyAI: usually transient; if it persists "
        "ask the token-service admin to check its upstream",
        503: "the token service has no AssemblyAI key or capacity right now: ask the "
        "token-service admin to add a key; edgecap retries by itself",
    }
    if status in fixes:
        return fixes[status]
    if status is not None and status >= 500:
        return "the token service failed: try again; if it persists ask its admin"
    return "check auth.token_service_url and the token service's documentation"


# -- streaming session ------------------------------------------------------------------------


def observed(stage: str, c: Classified) -> str:
    """What was seen, without the adapter's hint: a close code and reason, or an HTTP status."""
    if c.code is None:
        return c.hint
    if stage == "handshake":
        return f"HTTP {c.code}"
    return f"close {c.code}" + (f" {c.reason!r}" if c.reason else "")


CREDENTIAL_PLACES = (
    "auth.credential_file, $CREDENTIALS_DIRECTORY/token-service-credential or "
    "EDGECAP_TOKEN_SERVICE_CREDENTIAL"
)


def proxy_advice(classified: Classified, url: str) -> Advice | None:
    """A KeyPool-compatible proxy refused the upgrade (its documented statuses)."""
    seen = observed("handshake", classified)
    if classified.code in (401, 403):
        return Advice(
            f"the KeyPool proxy at {url} refused the team credential ({seen})",
            f"check the team credential ({CREDENTIAL_PLACES}) and that the proxy lets it "
            "use AssemblyAI; ask the KeyPool admin",
        )
    if classified.code == 429:
        return Advice(
            f"the KeyPool proxy is rate limiting this member ({seen})",
            "wait a minute and run the doctor again; if it persists, ask the KeyPool admin "
            "for a higher per-member limit",
        )
    if classified.code in (502, 503):
        return Advice(
            f"the KeyPool proxy could not reach AssemblyAI ({seen}: no upstream key or "
            "capacity, or AssemblyAI failed)",
            "retry later; if it persists, ask the KeyPool admin to check the proxy's "
            "AssemblyAI keys",
        )
    return None


def session_advice(
    stage: str, classified: Classified, url: str, *, way_in: str = "token_query"
) -> Advice:
    """Cause and fix for a session that did not reach ``Begin`` (`way_in`: how the upgrade
    carried the credential, see `AssemblyAIProvider.auth`)."""
    c = classified
    cls = c.error_class
    seen = observed(stage, c)
    if stage == "handshake" and way_in.startswith("proxy_"):
        advice = proxy_advice(c, url)
        if advice is not None:
            return advice
    if stage == "handshake" and way_in == "api_key_header" and c.code in (401, 403):
        return Advice(
            f"AssemblyAI refused the API key ({seen})",
            "check the key (auth.api_key_file or EDGECAP_ASSEMBLYAI_API_KEY); it is sent "
            "as it is, without 'Bearer'",
        )
    if stage == "handshake" and c.code in (401, 403):
        return Advice(
            f"the streaming server refused the WebSocket upgrade with {seen}: it did not "
            "accept the token",
            "the token and streaming.url must belong together: tokens from the token service "
            f"are AssemblyAI tokens for {V3_STREAMING_URL}; a proxy URL needs the proxy's own "
            "credential. If the URL is right, the AssemblyAI key behind the token service "
            "cannot stream (balance, disabled): ask the token-service admin",
        )
    if stage == "handshake" and c.code == 404:
        return Advice(
            f"there is no v3 streaming endpoint at {url} ({seen})",
            f'set streaming.url = "{V3_STREAMING_URL}" (or your proxy\'s .../v3/ws)',
        )
    if cls is ErrorClass.CONFIG:
        return Advice(
            f"{seen} before Begin: the server answers like the legacy v2 realtime API "
            "(a v2-era endpoint or proxy)",
            f'set streaming.url = "{V3_STREAMING_URL}"; v2 endpoints, keys placed in the URL '
            "and v2 tokens do not work with v3",
        )
    if cls is ErrorClass.AUTH:
        return Advice(
            f"the streaming server rejected the token: {seen} before Begin",
            "tokens are single-use and must be used within auth.token_expires_in_seconds; "
            "a token from the token service only works on AssemblyAI's streaming endpoint "
            f"({V3_STREAMING_URL}). If both are right, the AssemblyAI account behind the "
            "token service cannot stream (balance, disabled key): ask the token-service admin",
        )
    if cls is ErrorClass.THROTTLED:
        return Advice(
            f"AssemblyAI refused a new session ({seen}): too many sessions were opened",
            "wait a minute and run the doctor again; the limit is on new sessions per minute "
            "for the whole account",
        )
    if stage == "handshake" and c.code is None:
        return Advice(c.hint, f"check streaming.url ({url}) and the network")
    if stage == "begin" and c.code is None:
        return Advice(
            c.hint,
            "the server accepted the connection but never started a session: streaming.url "
            f"may not be an AssemblyAI v3 endpoint (use {V3_STREAMING_URL})",
        )
    if stage == "handshake":
        return Advice(
            f"the streaming server answered the WebSocket upgrade with {seen}",
            "usually transient: run the doctor again; if it persists check AssemblyAI's "
            f"status page and that streaming.url is {V3_STREAMING_URL}",
        )
    return Advice(
        f"the streaming server closed the connection before Begin ({seen})",
        "usually transient: run the doctor again; if it persists check AssemblyAI's status "
        f"page and that streaming.url is {V3_STREAMING_URL}",
    )


# -- configuration ----------------------------------------------------------------------------


def config_fix(problems: Sequence[str], path: str) -> str:
    """What to do about the configuration problems (each already names its key)."""
    fixes = [
        f"edit {path}: each line above names the key and what to do; re-check with "
        f"`edgecap check-config --config {path}`"
    ]
    text = " ".join(problems).lower()
    if "legacy v2" in text:
        fixes.append(f'set streaming.url = "{V3_STREAMING_URL}" (edgecap speaks only v3)')
    if "credentials don't belong in the url" in text:
        fixes.append(
            "remove keys and tokens from URLs; the team credential goes in a file "
            "(auth.credential_file) or a systemd credential, and edgecap fetches a "
            "single-use token per session"
        )
    if "no token-service credential found" in text:
        fixes.append(
            "store the team token with `sudo scripts/install.sh --credential -`, or in "
            "/etc/edgecap/credentials/token-service-credential (mode 0600) where the unit "
            "and the doctor find it"
        )
    return "; ".join(fixes)
