"""Pure checks of the URLs in the configuration (no I/O, no DNS).

Each check returns a list of one-line problems *without* the key path; the model
adds the key. Messages never contain query values or user-info, because those
are where people paste credentials.
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, urlsplit

V3_STREAMING_URL = "wss://streaming.assemblyai.com/v3/ws"
V3_TOKEN_URL = "https://streaming.assemblyai.com/v3/token"  # noqa: S105 - a URL
STREAMING_PATH_SUFFIX = "/v3/ws"
TOKEN_PATH_SUFFIX = "/v3/token"  # noqa: S105 - a URL path
PROXY_STREAMING_EXAMPLE = "wss://<keypool>/v1/assemblyai/v3/ws"

Region = Literal["global", "us", "eu"]
# global: routed to the nearest region; us/eu: data residency (the data stays in that zone).
REGION_HOSTS: MappingProxyType[Region, str] = MappingProxyType(
    {
        "global": "streaming.assemblyai.com",
        "us": "streaming.us.assemblyai.com",
        "eu": "streaming.eu.assemblyai.com",
    }
)
_HOST_REGIONS = {host: region for region, host in REGION_HOSTS.items()}

# Query parameter names that carry credentials (compared case-insensitively).
CREDENTIAL_PARAMS = frozenset({"token", "api_key", "apikey", "key", "authorization"})

_CREDENTIALS_IN_URL = (
    "credentials don't belong in the URL; edgecap fetches a fresh single-use token per session"
)


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (the only hosts allowed without TLS)."""
    if not host:
        return False
    name = host.lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def region_streaming_url(region: Region) -> str:
    """AssemblyAI's streaming WebSocket URL for ``region``."""
    return f"wss://{REGION_HOSTS[region]}{STREAMING_PATH_SUFFIX}"


def region_token_url(region: Region) -> str:
    """AssemblyAI's temporary-token URL for ``region`` (same host as the WebSocket)."""
    return f"https://{REGION_HOSTS[region]}{TOKEN_PATH_SUFFIX}"


def url_host(url: str) -> str:
    """The lower-cased host of ``url`` without a trailing dot ("" when it has none)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return ""
    return (host or "").rstrip(".")


def is_assemblyai_host(host: str) -> bool:
    """True for assemblyai.com and its subdomains."""
    name = host.lower().rstrip(".")
    return name == "assemblyai.com" or name.endswith(".assemblyai.com")


def region_of_url(url: str) -> Region | None:
    """The region whose AssemblyAI streaming or token host ``url`` names, else None."""
    return _HOST_REGIONS.get(url_host(url))


def host_problem(host: str) -> str | None:
    """Why the resolver would refuse ``host`` (it raises UnicodeError, not an OSError), or None."""
    if len(host) > 253:
        return "is longer than 253 characters, the most a host name may have"
    try:
        host.encode("idna")  # what socket.getaddrinfo does with a str host
    except UnicodeError:
        return "is not a valid host name: each dot-separated part must be 1 to 63 characters"
    return None


def _split(url: str) -> tuple[SplitResult | None, list[str]]:
    if not url.strip():
        return None, ["must not be empty"]
    if url != url.strip():
        return None, ["must not start or end with whitespace"]
    if not url.isprintable() or any(c.isspace() for c in url):
        return None, ["must not contain spaces or control characters (encode them as %XX)"]
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        return None, ["is not a valid URL (check the brackets around IPv6 hosts and the port)"]
    return parts, []


def _credential_problems(parts: SplitResult) -> list[str]:
    """Problems about secrets and stray query strings, never quoting a value."""
    problems: list[str] = []
    if parts.username is not None or parts.password is not None:
        problems.append(f"{_CREDENTIALS_IN_URL} (remove the user:password@ part)")
    if parts.query:
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        secret_names = sorted({n for n in names if n.lower() in CREDENTIAL_PARAMS})
        if secret_names:
            listed = ", ".join(repr(n) for n in secret_names)
            problems.append(f"{_CREDENTIALS_IN_URL} (remove the query parameter {listed})")
        else:
            problems.append(
                "must not contain a query string (?...); edgecap sends the connection "
                "parameters itself from the [audio], [streaming] and [endpointing] sections"
            )
    if parts.fragment:
        problems.append("must not contain a #fragment")
    return problems


def _is_legacy_v2(parts: SplitResult) -> bool:
    path = parts.path.lower()
    if "/v2/realtime" in path:
        return True
    return (parts.hostname or "") == "api.assemblyai.com" and path.startswith("/v2")


def _scheme_problems(parts: SplitResult, plain: str, secure: str, example: str) -> list[str]:
    """The secure scheme, or the plain one for loopback hosts only (tests, simulators)."""
    problems = []
    scheme = parts.scheme.lower()
    if scheme == plain:
        if not is_loopback_host(parts.hostname):
            problems.append(
                f"plain {plain}:// is only allowed for loopback hosts (127.0.0.0/8, ::1, "
                f"localhost) used by tests and simulators; use {secure}://, e.g. {example}"
            )
    elif scheme != secure:
        shown = repr(scheme) if scheme else "none"
        article = "an" if secure[0] in "aeiouh" else "a"
        problems.append(f"must be {article} {secure}:// URL (got scheme {shown}), e.g. {example}")
    if not parts.hostname:
        problems.append(f"has no host; use e.g. {example}")
    elif (problem := host_problem(parts.hostname)) is not None:
        problems.append(f"the host {problem}")
    return problems


def check_streaming_url(url: str) -> list[str]:
    """Problems with the Universal-Streaming WebSocket URL (empty list when fine)."""
    parts, problems = _split(url)
    if parts is None:
        return problems
    problems = _credential_problems(parts)
    problems += _scheme_problems(parts, "ws", "wss", V3_STREAMING_URL)
    if _is_legacy_v2(parts):
        problems.append(
            "is the legacy v2 realtime endpoint: v2-era clients fail there with "
            '"Not authorized" (close 4001) and edgecap speaks only v3; '
            f"use {V3_STREAMING_URL}"
        )
    elif not parts.path.rstrip("/").endswith(STREAMING_PATH_SUFFIX):
        problems.append(
            f"the path must end with {STREAMING_PATH_SUFFIX} (got path {parts.path or '/'!r}), "
            f"e.g. {V3_STREAMING_URL} or a proxy's .../v1/assemblyai/v3/ws"
        )
    return problems


def check_http_url(
    url: str,
    *,
    require_suffix: str | None = None,
    forbid_suffix: str | None = None,
    example: str,
) -> list[str]:
    """Problems with an HTTP(S) URL; plain http is accepted only for loopback hosts."""
    parts, problems = _split(url)
    if parts is None:
        return problems
    problems = _credential_problems(parts)
    problems += _scheme_problems(parts, "http", "https", example)
    path = parts.path.rstrip("/")
    if require_suffix is not None and not path.endswith(require_suffix):
        problems.append(
            f"the path must end with {require_suffix} (got path {parts.path or '/'!r}), "
            f"e.g. {example}"
        )
    if forbid_suffix is not None and path.endswith(forbid_suffix):
        problems.append(
            f"give the base URL without {forbid_suffix} (edgecap appends {forbid_suffix}), "
            f"e.g. {example}"
        )
    return problems
