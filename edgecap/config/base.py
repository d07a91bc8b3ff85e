"""Building blocks of the configuration models: the strict section base, number types that
refuse TOML booleans, and the one-line validation problem (no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

CUSTOM_ERROR_TYPE = "edgecap"


def config_problem(
    message: str, *, key: str | None = None, more: tuple[str, ...] = ()
) -> Exception:
    """A validation error carrying a finished message; ``key`` names the field to blame."""
    context: dict[str, Any] = {"message": message, "problems": (message, *more)}
    if key is not None:
        context["key"] = key
    return PydanticCustomError(CUSTOM_ERROR_TYPE, "{message}", context)


def _q(value: object) -> str:
    """Quote a (non-secret) value the way TOML writes it."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def _no_bool(value: object) -> object:
    # TOML `true` would otherwise be accepted as the number 1 by pydantic's lax mode.
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "must be a number, not true/false")
    return value


def _non_empty_path(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise config_problem("must not be empty; remove the key to use the default")
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
FilePath = Annotated[Path, BeforeValidator(_non_empty_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
