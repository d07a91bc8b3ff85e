"""Rules that span sections: the proxy's URL, turn detection against the speech model, and
the AssemblyAI token URL that follows the streaming region (pure functions, no I/O).

Problems are ``config_problem``s whose key is the full dotted path, raised from the
top-level model's validator.
"""

from __future__ import annotations

from edgecap.config.auth import AuthConfig
from edgecap.config.base import config_problem
from edgecap.config.streaming import EndpointingConfig, StreamingConfig
from edgecap.config.urls import (
    PROXY_STREAMING_EXAMPLE,
    is_assemblyai_host,
    region_token_url,
    url_host,
)


def check_proxy(auth: AuthConfig, streaming: StreamingConfig) -> None:
    """In proxy mode the WebSocket URL must be set, and be the proxy's, not AssemblyAI's."""
    if auth.mode != "proxy":
        return
    if not streaming.url_is_explicit:
        raise config_problem(
            'required when auth.mode = "proxy": the WebSocket URL of the KeyPool-compatible '
            f'proxy, e.g. "{PROXY_STREAMING_EXAMPLE}"',
            key="streaming.url",
        )
    host = url_host(streaming.url)
    if is_assemblyai_host(host):
        raise config_problem(
            f'must be the proxy\'s URL when auth.mode = "proxy", not an AssemblyAI host (got '
            f"host {host}); a proxy URL looks like {PROXY_STREAMING_EXAMPLE}. To fetch tokens "
            "from the token service and connect to AssemblyAI directly, use auth.mode = "
            '"token_service"',
            key="streaming.url",
        )


def check_endpointing(streaming: StreamingConfig, endpointing: EndpointingConfig) -> None:
    """No confidence threshold on the Pro models; min <= max where both are known."""
    model = streaming.speech_model
    if streaming.caps.is_pro and "end_of_turn_confidence_threshold" in endpointing.model_fields_set:
        raise config_problem(
            f'has no effect with streaming.speech_model = "{model}" (got '
            f"{endpointing.end_of_turn_confidence_threshold:g}): the Pro models end turns on "
            "punctuation and silence; remove it and tune endpointing.min_turn_silence and "
            "max_turn_silence instead",
            key="endpointing.end_of_turn_confidence_threshold",
        )
    low, high = endpointing.effective_turn_silence(model)
    if low is None or high is None or high >= low:
        return
    if endpointing.max_turn_silence is None:
        raise config_problem(
            f"must be <= {high} ms, the max_turn_silence {model} uses by default (got {low}); "
            "set endpointing.max_turn_silence too",
            key="endpointing.min_turn_silence",
        )
    raise config_problem(  # only max was set (both set: EndpointingConfig's own check)
        f"must be >= {low} ms, the min_turn_silence {model} uses by default (got {high}); "
        "set endpointing.min_turn_silence too",
        key="endpointing.max_turn_silence",
    )


def resolve_api_token_url(auth: AuthConfig, streaming: StreamingConfig) -> AuthConfig:
    """``auth`` whose unset ``api_token_url`` is the token host of the streaming region
    (``streaming.effective_region``); the keys the file set are kept as they were."""
    if "api_token_url" in auth.model_fields_set:
        return auth
    wanted = region_token_url(streaming.effective_region)
    if wanted == auth.api_token_url:
        return auth
    values = {**dict(auth), "api_token_url": wanted}
    return AuthConfig.model_construct(_fields_set=set(auth.model_fields_set), **values)
