"""Building blocks of the configuration models: the strict section base, number types that
refuse TOML booleans, and the one-line validation problem (no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

CUSTOM_ERROR_TYPE = "edgecap"
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux


def config_problem(
    message: str,
    *,
    key: str | None = None,
    index: int | None = None,
    more: tuple[str, ...] = (),
) -> Exception:
    """A validation error carrying a finished message; ``key`` names the field to blame
    (a dotted path from where the validator runs), ``index`` the item of an array
    (shown as ``key[index]``)."""
    context: dict[str, Any] = {"message": message, "problems": (message, *more)}
    if key is not None:
        context["key"] = key
    if index is not None:
        context["index"] = index
    return PydanticCustomError(CUSTOM_ERROR_TYPE, "{message}", context)


def config_problems(keyed: list[tuple[str, str]]) -> Exception:
    """Several problems at once, each ``(key, message)`` with its own key (a dotted path from
    where the validator runs), so that one validator reports every rule it finds broken."""
    first_key, first = keyed[0]
    context: dict[str, Any] = {"message": first, "key": first_key, "keyed": tuple(keyed)}
    return PydanticCustomError(CUSTOM_ERROR_TYPE, "{message}", context)


def printable(text: str) -> str:
    """``text`` safe for one terminal or journal line: control and format characters,
    line breaks and lone surrogates (undecodable bytes from the environment or the command
    line, which cannot be encoded as UTF-8) are shown as escapes such as ``\\x1b``."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        code = ord(char)
        if char.isprintable():
            out.append(char)
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def is_utf8(text: str) -> bool:
    """False when ``text`` holds undecodable bytes (surrogate escapes), e.g. from os.environ."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _q(value: object) -> str:
    """Quote a (non-secret) value the way TOML writes it, shortened and printable."""
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
    return printable(shorten(text))


def _no_bool(value: object) -> object:
    # TOML `true` would otherwise be accepted as the number 1 by pydantic's lax mode.
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "must be a number, not true/false")
    return value


def _non_empty_path(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise config_problem("must not be empty; remove the key to use the default")
    return _usable_path(value)


def path_problem(text: str) -> str | None:
    """Why the operating system cannot take ``text`` as a path (it would raise later), or None."""
    if "\x00" in text:
        return "must not contain a NUL character (\\x00)"
    if not is_utf8(text):
        return "must be valid UTF-8 text"
    if len(text) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters; use a shorter path"
    return None


def _usable_path(value: object) -> object:
    if isinstance(value, str | Path) and (problem := path_problem(str(value))):
        raise config_problem(problem)
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
FilePath = Annotated[Path, BeforeValidator(_non_empty_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
