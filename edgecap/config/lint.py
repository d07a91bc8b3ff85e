"""Warnings about a valid configuration: keys that are set but have no effect in the chosen
mode or model, and harmless redundancy. They never stop the daemon; `check-config` prints
them and `edgecap run` logs them at start (``LoadedConfig.warnings``). Pure functions.
"""

from __future__ import annotations

from edgecap.config.base import _q
from edgecap.config.model import Config
from edgecap.config.provider_rules import provider_warnings
from edgecap.config.urls import (
    is_assemblyai_host,
    is_loopback_host,
    region_of_url,
    region_token_url,
    url_host,
)


def _auth_warnings(config: Config) -> list[str]:
    auth, mode = config.auth, config.auth.mode
    explicit = auth.model_fields_set
    found = []
    if mode == "proxy" and auth.token_service_url is not None:
        found.append(
            'auth.token_service_url: is not used when auth.mode = "proxy" (edgecap connects '
            "through streaming.url with the team credential); remove it"
        )
    if "proxy_auth" in explicit and mode != "proxy":
        found.append(
            f'auth.proxy_auth: is used only when auth.mode = "proxy" (auth.mode is "{mode}"); '
            "it has no effect, remove it"
        )
    if "api_key_auth" in explicit and mode != "api_key":
        found.append(
            f'auth.api_key_auth: is used only when auth.mode = "api_key" (auth.mode is '
            f'"{mode}"); it has no effect, remove it'
        )
    return found


def _api_key_warnings(config: Config) -> list[str]:
    auth, streaming = config.auth, config.streaming
    if auth.mode != "api_key":
        return []
    found = []
    if auth.api_key_auth == "header":
        if "api_token_url" in auth.model_fields_set:
            found.append(
                'auth.api_token_url: is not used with auth.api_key_auth = "header" (no token '
                "is minted); remove it"
            )
        host = url_host(streaming.url)
        if not is_assemblyai_host(host) and not is_loopback_host(host):
            found.append(
                f'streaming.url: auth.api_key_auth = "header" sends the AssemblyAI API key '
                f"itself to {host}, which is not an AssemblyAI host; make sure that server "
                "may have it"
            )
        return found
    token_region = region_of_url(auth.api_token_url)
    region = streaming.effective_region
    if token_region is not None and token_region != region:
        found.append(
            f'auth.api_token_url: mints tokens in the "{token_region}" region but sessions '
            f'stream to the "{region}" region (streaming.region / streaming.url); remove '
            f"auth.api_token_url to use {region_token_url(region)}"
        )
    return found


def _streaming_warnings(config: Config) -> list[str]:
    streaming = config.streaming
    found = []
    explicit = streaming.model_fields_set
    if streaming.caps.is_pro and "format_turns" in explicit and streaming.format_turns:
        found.append(
            f"streaming.format_turns: has no effect with streaming.speech_model = "
            f'"{streaming.speech_model}" (the Pro models always format their finals); '
            "remove it"
        )
    host = url_host(streaming.url)
    if "region" in explicit and streaming.url_is_explicit and not is_assemblyai_host(host):
        found.append(
            f"streaming.region: has no effect: streaming.url ({host}) is not an AssemblyAI "
            "host, so that server decides where the audio goes"
        )
    seen: dict[str, int] = {}
    for index, term in enumerate(streaming.keyterms):
        first = seen.setdefault(term.casefold(), index)
        if first != index:
            found.append(
                f"streaming.keyterms[{index}]: {_q(term)} repeats keyterms[{first}] "
                f"({_q(streaming.keyterms[first])}; case is ignored); remove the repeat, it "
                "takes one of the 100 places"
            )
    return found


def config_warnings(config: Config) -> tuple[str, ...]:
    """Every warning about ``config``, one line each, starting with the key."""
    found = _auth_warnings(config)
    if config.streaming.provider == "assemblyai":
        found += _api_key_warnings(config) + _streaming_warnings(config)
    found += provider_warnings(config.auth, config.streaming, config.endpointing, config.openai)
    return tuple(found)
