"""Environment overrides: ``EDGECAP_<SECTION>__<KEY>=value`` replaces ``[section] key``.

Section and key are case-insensitive. ``EDGECAP_DEVICE_ID`` and ``EDGECAP_STATE_DIR``
override the top-level keys. Values stay strings; pydantic's lax mode converts
them. An empty value for a key whose default is unset (e.g. ``mqtt.username``)
means "unset". Array keys (``streaming.keyterms``) take a JSON array
(``EDGECAP_STREAMING__KEYTERMS='["edgecap", "Raspberry Pi"]'``); empty means none.
Other ``EDGECAP_*`` names without ``__`` (``EDGECAP_CONFIG``, the secret variables) are not
overrides and are ignored here. A name or value that is not UTF-8 (os.environ holds such
bytes as lone surrogates) is refused, never shown.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from edgecap.config.base import is_utf8, printable
from edgecap.config.model import SECTION_MODELS
from edgecap.config.problems import array_example, inline_secret_hint, suggest_key

ENV_PREFIX = "EDGECAP_"
SEPARATOR = "__"
TOP_LEVEL_OVERRIDES = {"EDGECAP_DEVICE_ID": "device_id", "EDGECAP_STATE_DIR": "state_dir"}


def _accepts_none(model: type[BaseModel], key: str) -> bool:
    annotation = model.model_fields[key].annotation
    if get_origin(annotation) in (Union, types.UnionType):
        return type(None) in get_args(annotation)
    return False


def _is_array(model: type[BaseModel], key: str) -> bool:
    annotation = model.model_fields[key].annotation
    options = (
        get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType)
        else (annotation,)
    )
    return any(get_origin(option) in (tuple, list) for option in options)


def _override_value(model: type[BaseModel], key: str, value: str) -> tuple[Any, str | None]:
    """The value an override gives ``key``, or a problem. Arrays are written as JSON."""
    if value == "" and _accepts_none(model, key):
        return None, None
    if not _is_array(model, key):
        return value, None
    if value.strip() == "":
        return [], None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        parsed = None
    if not isinstance(parsed, list):
        return None, f"must be a JSON array, e.g. {array_example(key)} (the value is not)"
    return parsed, None


def apply_env_overrides(
    data: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Return (data with overrides applied, {key path: source label}, problems)."""
    # Only section tables are changed: copy two levels (a deep copy recursed once per level of
    # nesting in the file and raised RecursionError on a hostile one).
    result = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for var in sorted(environ):
        value = environ[var]
        is_override = var in TOP_LEVEL_OVERRIDES or (
            var.startswith(ENV_PREFIX) and SEPARATOR in var[len(ENV_PREFIX) :]
        )
        if is_override and not (is_utf8(var) and is_utf8(value)):
            problems.append(
                f"environment variable {printable(var)}: is not valid UTF-8 text; "
                "set it to UTF-8 text or unset it"
            )
            continue
        if var in TOP_LEVEL_OVERRIDES:
            key = TOP_LEVEL_OVERRIDES[var]
            result[key] = value
            sources[key] = f"environment variable {var}"
            continue
        if not var.startswith(ENV_PREFIX) or SEPARATOR not in var[len(ENV_PREFIX) :]:
            continue
        section_raw, key_raw = var[len(ENV_PREFIX) :].split(SEPARATOR, 1)
        section, key = section_raw.lower(), key_raw.lower()
        model = SECTION_MODELS.get(section)
        if model is None:
            import difflib  # only for a config problem: not kept in the running daemon

            close = difflib.get_close_matches(section, list(SECTION_MODELS), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(
                f"environment variable {var}: unknown section {section}{hint}; "
                f"sections are {', '.join(SECTION_MODELS)}"
            )
            continue
        if key not in model.model_fields:
            secret_hint = inline_secret_hint(section, key)
            if secret_hint:
                problems.append(
                    f"environment variable {var}: {section}.{key} is not a setting and "
                    f"secrets are not accepted as overrides; {secret_hint}"
                )
                continue
            guess = suggest_key(model, key)
            hint = f" (did you mean {section}.{guess}?)" if guess else ""
            problems.append(f"environment variable {var}: unknown key {section}.{key}{hint}")
            continue
        table = result.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # the file's own `section = <not a table>` is reported by validation
        parsed, problem = _override_value(model, key, value)
        if problem is not None:
            problems.append(f"environment variable {var}: {problem}")
            continue
        table[key] = parsed
        sources[f"{section}.{key}"] = f"environment variable {var}"
    return result, sources, problems
