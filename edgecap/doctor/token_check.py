"""Check 3: the token source is reachable, accepts the credential and issues a token.

The token obtained here is handed to the streaming check (tokens are single-use, so no
second one is spent). It is never shown.
"""

from __future__ import annotations

import time

from edgecap.app import wiring
from edgecap.auth.tokens import CredentialSource, StaticCredential, TokenError
from edgecap.config import SessionConfig
from edgecap.doctor.context import DoctorContext
from edgecap.doctor.explain import network_advice, network_kind, token_fix
from edgecap.doctor.result import CheckResult, failed, passed, skipped

CHECK = "token"


def token_client(ctx: DoctorContext) -> CredentialSource | None:
    """What the daemon opens sessions with for this configuration (a token client, or the
    credential itself), with the doctor's timeout."""
    cfg = ctx.cfg
    if cfg.auth is None:
        return None
    timeout = ctx.options.network_timeout(cfg.auth.request_timeout_seconds)
    session = cfg.session or SessionConfig()
    openai = cfg.openai if cfg.streaming and cfg.streaming.provider == "openai" else None
    return wiring.credential_source(
        cfg.auth, session, cfg.secrets, openai=openai or None, timeout=timeout
    )


async def check_token(ctx: DoctorContext) -> CheckResult:
    cfg = ctx.cfg
    auth = cfg.auth
    if auth is None:
        ctx.token_problem = "no valid [auth] section"  # noqa: S105 - not a secret
        return skipped(CHECK, cfg.unavailable("auth"))
    service = auth.uses_team_credential
    openai = cfg.streaming is not None and cfg.streaming.provider == "openai"
    if service:
        secret_name, what = "token_service_credential", "token-service credential"
    else:
        secret_name = "openai_api_key" if openai else "api_key"
        what = "OpenAI API key" if openai else "AssemblyAI API key"
    secret = getattr(cfg.secrets, secret_name)
    if not secret:
        ctx.token_problem = f"no {what}"
        return skipped(CHECK, f"not run: no {what} was found (see config)")
    source = token_client(ctx)
    assert source is not None
    ctx.tokens = source
    if isinstance(source, StaticCredential):  # proxy, or the key in the upgrade's header
        ctx.token = await source.fetch()
        how = "the KeyPool proxy" if auth.mode == "proxy" else "the API key in its header"
        return passed(
            CHECK,
            f"no token needed: auth.mode = {auth.mode!r} mints none; the {what} was found "
            f"and the streaming check uses it ({how})",
            source=source.source,
        )
    client = source
    url_key = "auth.token_service_url" if service else "auth.api_token_url"
    if openai and not service:
        url_key = "openai.client_secrets_url"
    started = time.monotonic()
    try:
        token = await client.fetch()
    except TokenError as exc:
        ctx.token_problem = f"the {client.source} did not issue a token"
        credential_source = cfg.secrets.sources.get(secret_name, "")
        data = {"url": client.url, "status": exc.status, "kind": exc.kind}
        if exc.kind in ("network", "timeout"):
            advice = network_advice(network_kind(exc), client.source, client.url, url_key)
            return failed(CHECK, f"{advice.cause}: {exc}", advice.fix, **data)
        return failed(
            CHECK, str(exc), token_fix(client.source, exc.status, exc.kind, credential_source),
            **data,
        )  # fmt: skip
    elapsed_ms = round((time.monotonic() - started) * 1000)
    ctx.token = token
    valid_for = round(token.expires_at - token.obtained_at)
    return passed(
        CHECK,
        f"the {client.source} at {client.url} issued a token in {elapsed_ms} ms "
        f"(usable for {valid_for} s)",
        url=client.url,
        elapsed_ms=elapsed_ms,
    )
