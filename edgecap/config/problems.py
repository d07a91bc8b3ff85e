"""Turning configuration mistakes into one-line problems, and the ``ConfigError`` carrying them.

Every problem starts with the dotted key path (or the environment variable or
file) and says what to do. Values of unknown keys, inline secrets and URLs are
never quoted back.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edgecap.config.base import CUSTOM_ERROR_TYPE, printable, shorten
from edgecap.config.model import SECTION_MODELS, Config

MAX_LINE_CHARS = 1000  # a problem line stays one readable journal line (LineMax is 48 KiB)


def one_line(text: str) -> str:
    """A problem or warning as it may be shown: printable, on one line, of bounded length."""
    return shorten(printable(text), MAX_LINE_CHARS)


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every reason, one line each.

    ``warnings`` (e.g. a secret file others can read) do not make it unusable; they are
    carried so that a rejected configuration still shows them. Both are made printable.
    """

    def __init__(self, problems: Sequence[str], warnings: Sequence[str] = ()) -> None:
        self.problems: list[str] = [one_line(p) for p in problems]
        self.warnings: list[str] = [one_line(w) for w in warnings]
        super().__init__(self.problems)

    def __str__(self) -> str:
        lines = [f"invalid configuration ({len(self.problems)} problem(s)):"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


API_KEY_HINT = (
    "put it in a file and set auth.api_key_file, or use "
    "$CREDENTIALS_DIRECTORY/assemblyai-api-key or EDGECAP_ASSEMBLYAI_API_KEY"
)
OPENAI_API_KEY_HINT = (
    "put it in a file and set auth.openai_api_key_file, or use "
    "$CREDENTIALS_DIRECTORY/openai-api-key or EDGECAP_OPENAI_API_KEY"
)
CREDENTIAL_HINT = (
    "put it in a file and set auth.credential_file, or use "
    "$CREDENTIALS_DIRECTORY/token-service-credential or EDGECAP_TOKEN_SERVICE_CREDENTIAL"
)
MQTT_HINT = (
    "put it in a file and set mqtt.password_file, or use "
    "$CREDENTIALS_DIRECTORY/mqtt-password or EDGECAP_MQTT_PASSWORD"
)
_API_KEY_NAMES = frozenset({"api_key", "apikey", "key", "assemblyai_api_key"})
_OPENAI_KEY_NAMES = frozenset({"openai_api_key", "openai_key", "openai_apikey"})
_CREDENTIAL_NAMES = frozenset(
    {"credential", "credentials", "token", "team_token", "token_service_credential", "secret"}
)
_PASSWORD_NAMES = frozenset({"password", "passwd", "pass", "mqtt_password"})


def inline_secret_hint(section: str | None, key: str) -> str | None:
    """The advice for a key that looks like an inline secret, or None if it does not."""
    name = key.lower().replace("-", "_")
    if name in _OPENAI_KEY_NAMES or (section == "openai" and name in _API_KEY_NAMES):
        return OPENAI_API_KEY_HINT
    if name in _API_KEY_NAMES:
        return API_KEY_HINT
    if name in _PASSWORD_NAMES:
        return MQTT_HINT if section in (None, "mqtt") else CREDENTIAL_HINT
    if name in _CREDENTIAL_NAMES:
        return MQTT_HINT if section == "mqtt" else CREDENTIAL_HINT
    return None


def remove_inline_secrets(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop keys that hold secrets inline (a copy is returned) and explain each one."""
    problems: list[str] = []
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if key not in Config.model_fields and (hint := inline_secret_hint(None, key)):
            problems.append(f"{key}: secrets are not accepted inline; {hint}")
            continue
        model = SECTION_MODELS.get(key)
        if model is not None and isinstance(value, dict):
            section: dict[str, Any] = {}
            for sub_key, sub_value in value.items():
                hint = None if sub_key in model.model_fields else inline_secret_hint(key, sub_key)
                if hint:
                    problems.append(f"{key}.{sub_key}: secrets are not accepted inline; {hint}")
                else:
                    section[sub_key] = sub_value
            cleaned[key] = section
        else:
            cleaned[key] = value
    return cleaned, problems


def suggest_key(model: type[BaseModel], name: str) -> str | None:
    """The closest field name of ``model`` to ``name`` (typo tolerance), if any."""
    fields = list(model.model_fields)
    lowered = {f.lower(): f for f in fields}
    if name.lower() in lowered:
        return lowered[name.lower()]
    import difflib  # only for a config problem: not kept in the running daemon

    matches = difflib.get_close_matches(name.lower(), fields, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _model_at(loc: Sequence[str]) -> type[BaseModel] | None:
    if not loc:
        return Config
    if len(loc) == 1:
        return SECTION_MODELS.get(loc[0])
    return None


def unknown_key_problem(loc: Sequence[str]) -> str:
    path = ".".join(loc)
    parent = _model_at(loc[:-1])
    name = loc[-1]
    if parent is None:
        return f"{path}: unknown key; remove it"
    guess = suggest_key(parent, name)
    if guess is not None:
        return f"{path}: unknown key (did you mean {guess}?)"
    homes = [s for s, m in SECTION_MODELS.items() if name in m.model_fields and s != loc[0]]
    if homes:
        return (
            f"{path}: unknown key here (did you mean {homes[0]}.{name}? put it under [{homes[0]}])"
        )
    if len(loc) == 2 and name in Config.model_fields and name not in SECTION_MODELS:
        return f"{path}: unknown key here ({name} is a top-level key: put it before any [section])"
    valid = ", ".join(parent.model_fields)
    return f"{path}: unknown key; remove it (valid keys: {valid})"


def show_value(value: Any) -> str:
    """A short TOML-ish rendering of a (non-secret) value for a problem line."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(shorten(value, 200), ensure_ascii=False)
    elif isinstance(value, int) and abs(value) >= 10**60:
        text = f"a number of {len(str(abs(value)))} digits"
    else:
        text = str(value)
    return printable(shorten(text))


def _frame_name(frame: traceback.FrameSummary) -> str:
    parts = Path(frame.filename).parts
    kept = parts[parts.index("edgecap") :] if "edgecap" in parts else parts[-2:]
    return f"{'/'.join(kept)}:{frame.lineno}"


def internal_error_problem(where: object, exc: BaseException) -> str:
    """The one line shown for an unexpected exception: what and where, enough to report it
    (the innermost frame, and the innermost edgecap frame when that is elsewhere)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "edgecap" in Path(f.filename).parts]
    places = list(dict.fromkeys(_frame_name(f) for f in frames[-1:] + ours[-1:]))
    at = f" at {' via '.join(places)}" if places else ""
    message = f": {shorten(str(exc), 200)}" if str(exc) else ""
    return (
        f"{where}: could not be checked: unexpected {type(exc).__name__}{message}{at}; "
        "this is a bug in edgecap, please report this line; meanwhile look for unusual "
        "values in the file and in the EDGECAP_* environment"
    )


def _bounds_text(model: type[BaseModel] | None, field: str) -> str | None:
    if model is None or field not in model.model_fields:
        return None
    ge = gt = le = lt = None
    for item in model.model_fields[field].metadata:  # annotated_types Ge/Gt/Le/Lt markers
        ge = getattr(item, "ge", ge)
        gt = getattr(item, "gt", gt)
        le = getattr(item, "le", le)
        lt = getattr(item, "lt", lt)
    low = f"at least {ge}" if ge is not None else (f"greater than {gt}" if gt is not None else "")
    high = f"at most {le}" if le is not None else (f"less than {lt}" if lt is not None else "")
    if ge is not None and le is not None:
        return f"between {ge} and {le}"
    if low and high:
        return f"{low} and {high}"
    return low or high or None


def _literal_choices(model: type[BaseModel] | None, field: str) -> list[str]:
    if model is None or field not in model.model_fields:
        return []
    args = get_args(model.model_fields[field].annotation)
    if args and not any(isinstance(a, str) for a in args):  # an optional Literal
        args = tuple(a for arg in args for a in get_args(arg))
    return [str(a) for a in args if isinstance(a, str)]


def array_example(key: str) -> str:
    """A sample value of the array key ``key``, for problem lines."""
    return '["de", "en"]' if key == "language_codes" else '["edgecap", "Raspberry Pi"]'


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "int_parsing_size": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_not_number": "a number",
}


def _describe(err: ErrorDetails, loc: Sequence[str]) -> str:
    kind = err["type"]
    model = _model_at(loc[:-1])
    field = loc[-1] if loc else ""
    bounds = _bounds_text(model, field)
    if kind in _TYPE_WORDS:
        word = _TYPE_WORDS[kind]
        if kind == "bool_not_number" and model is not None and field in model.model_fields:
            word = "an integer" if model.model_fields[field].annotation is int else word
        what = f"must be {word}"
        return f"{what} {bounds}" if bounds else what
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"must be {bounds}" if bounds else f"must be {err['msg'].lower()}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be a string (in quotes)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {err.get('ctx', {}).get('max_length')} characters long"
    if kind in ("path_type", "path_parsing"):
        return "must be a path (a string)"
    if kind in ("tuple_type", "list_type"):
        return f"must be an array, e.g. {array_example(field)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a table ([{'.'.join(loc)}])"
    if kind == "missing":
        return "is required"
    if kind == "literal_error":
        choices = _literal_choices(model, field)
        listed = ", ".join(json.dumps(c) for c in choices) or err["ctx"]["expected"]
        text = f"must be one of {listed}"
        value = err.get("input")
        if isinstance(value, str) and choices:
            import difflib  # only for a config problem: not kept in the running daemon

            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            if close:
                text += f" (did you mean {json.dumps(close[0])}?)"
        return text
    message = err["msg"]
    return message[:1].lower() + message[1:]


def _key_path(loc: Sequence[str | int]) -> str:
    """``streaming.keyterms[3]``: dotted names, array items as ``[index]``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _keyed_problems(
    loc: list[str | int], keyed: Sequence[tuple[str, str]], env_sources: Mapping[str, str]
) -> list[str]:
    """The lines of a ``config_problems`` error: each message under its own key."""
    lines = []
    for key, message in keyed:
        path = _key_path([*loc, key])
        source = env_sources.get(path)
        lines.append(f"{path}: {message}" + (f" (from {source})" if source else ""))
    return lines


def validation_problems(
    exc: ValidationError, env_sources: Mapping[str, str] | None = None
) -> list[str]:
    """One line per pydantic error; ``env_sources`` maps key paths to overriding variables."""
    env_sources = env_sources or {}
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc: list[str | int] = [
            part if isinstance(part, int) else shorten(str(part)) for part in err["loc"]
        ]
        names = [part for part in loc if isinstance(part, str)]
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(unknown_key_problem(names))
            continue
        if kind == CUSTOM_ERROR_TYPE and "keyed" in err.get("ctx", {}):
            problems += _keyed_problems(loc, err["ctx"]["keyed"], env_sources)
            continue
        if kind == CUSTOM_ERROR_TYPE:
            ctx = err.get("ctx", {})
            if "key" in ctx:
                loc.append(str(ctx["key"]))
            if isinstance(ctx.get("index"), int):
                loc.append(ctx["index"])
            messages = [str(m) for m in ctx.get("problems", (err["msg"],))]
            suffix = ""
        else:
            messages = [_describe(err, names if names == loc else [*names, ""])]
            suffix = f"got {show_value(err.get('input'))}"
        path = _key_path(loc) or "(top level)"
        source = env_sources.get(_key_path([part for part in loc if isinstance(part, str)]))
        if source:
            suffix = f"{suffix}, from {source}" if suffix else f"from {source}"
        for message in messages:
            problems.append(f"{path}: {message}" + (f" ({suffix})" if suffix else ""))
    return problems
