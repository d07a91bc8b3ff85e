"""Reading the config file and the secret files without blocking, without unbounded memory
and without a traceback, whatever the path points at.

Only regular files are read, up to a size limit. The path is checked with ``stat`` first,
so a device is never even opened (opening some has side effects: ``/dev/watchdog`` arms the
hardware watchdog); then it is opened non-blocking (a FIFO opens at once instead of waiting
for a writer), without becoming the controlling terminal, and checked again with ``fstat``
in case it was swapped in between.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

CONFIG_MAX_BYTES = 1024 * 1024  # 1 MiB: the example config, with every comment, is 15 KiB
SECRET_MAX_BYTES = 64 * 1024  # 64 KiB: a secret is one line (tokens and keys are < 1 KiB)

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class RefusedFileError(Exception):
    """The path exists but is no regular file of an acceptable size.

    ``reason`` completes a sentence about the path ("is a named pipe (FIFO), not a file").
    """

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


def size_text(limit: int) -> str:
    """A size limit (a whole number of KiB or MiB) for a message."""
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = _kind(st.st_mode)
        raise RefusedFileError(kind if kind.startswith("not") else f"is {kind}, not a file")
    if st.st_size > limit:
        raise RefusedFileError(
            f"is larger than {size_text(limit)} ({st.st_size} bytes)", too_large=True
        )


def read_regular_file(path: Path, limit: int) -> tuple[bytes, int]:
    """The content of a regular file of at most ``limit`` bytes, and its permission bits.

    Raises ``RefusedFileError``, ``OSError`` (not found, permission denied...) or
    ``ValueError`` (a NUL in the path).
    """
    _check(os.stat(path), limit)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        _check(st, limit)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, limit + 1 - total):  # the file may grow after fstat
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise RefusedFileError(f"is larger than {size_text(limit)}", too_large=True)
        return b"".join(chunks), stat.S_IMODE(st.st_mode)
    finally:
        os.close(fd)


def read_toml(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The parsed config file, or None and the one problem that stops it being read."""
    try:
        raw, _ = read_regular_file(path, CONFIG_MAX_BYTES)
    except FileNotFoundError:
        return None, [
            f"{path}: config file not found; copy config/edgecap.toml from the edgecap "
            "sources there and edit it, or pass --config PATH (or set EDGECAP_CONFIG)"
        ]
    except RefusedFileError as exc:
        advice = "is it the right file?" if exc.too_large else "pass the path of the TOML file"
        return None, [f"{path}: {exc.reason}; {advice}"]
    except PermissionError:
        return None, [
            f"{path}: cannot be read (permission denied); make it readable by the service user"
        ]
    except OSError as exc:
        return None, [f"{path}: cannot be read ({exc.strerror or type(exc).__name__})"]
    except ValueError:
        return None, [f"{path}: the path contains a NUL character; fix the path"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, [f"{path}: is not UTF-8 text"]
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: TOML syntax error: {exc}; fix the file (strings need quotes)"]
    except RecursionError:  # tomllib recurses once per level of nested arrays/inline tables
        return None, [_too_deep_problem(path, text)]
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() (4300) digits
        return None, [_long_number_problem(path, text)]


def _too_deep_problem(path: Path, text: str) -> str:
    key, line, depth = _deepest_value(text)
    return (
        f"{key or path}: arrays or inline tables nested {depth} levels deep (line {line}), "
        "deeper than the TOML reader can follow; edgecap settings are single values: "
        "fix or remove it"
    )


def _long_number_problem(path: Path, text: str) -> str:
    match = re.search(r"[0-9][0-9_]{4299,}", text)
    line = text.count("\n", 0, match.start()) + 1 if match else 0
    where = f" (line {line})" if line else ""
    return (
        f"{path}: a number has more than 4300 digits{where}, more than the TOML reader "
        "takes; no edgecap setting needs more than a few digits: fix the value"
    )


def _string_end(text: str, start: int) -> int:
    """The index just after the TOML string starting at ``start`` (any of the four kinds)."""
    quote = text[start] * 3 if text.startswith(text[start] * 3, start) else text[start]
    escapes = quote[0] == '"'
    i = start + len(quote)
    while i < len(text):
        if escapes and text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote)
        else:
            i += 1
    return len(text)


def _header_end(text: str, start: int) -> int:
    """The index just after the ``[table]`` or ``[[table]]`` header starting at ``start``."""
    i = start + 1
    while i < len(text) and text[i] not in "]\n":
        i = _string_end(text, i) if text[i] in "\"'" else i + 1
    return i + 2 if text.startswith("]]", i) and text.startswith("[[", start) else i + 1


def _deepest_value(text: str) -> tuple[str, int, int]:
    """(dotted key, line, depth) of the most deeply nested array or inline table.

    A small scanner for the case where the TOML reader itself gave up: it skips strings
    and comments, follows ``[table]`` headers and ``key =`` at the top of a table, and
    counts brackets and braces.
    """
    table = key = ""
    depth = best_depth = 0
    best_key, best_line = "", 1
    line, line_start, i = 1, 0, 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        if char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if char == "\n":
            line, line_start = line + 1, i + 1
        elif depth == 0 and char == "[" and not text[line_start:i].strip():
            end = _header_end(text, i)
            table, key = text[i:end].strip("[] \t"), ""
            i = end
            continue
        elif depth == 0 and char == "=":
            key = text[line_start:i].strip()
        elif char in "[{":
            depth += 1
            if depth > best_depth:
                best_depth, best_line = depth, line
                best_key = f"{table}.{key}" if table and key else table or key
        elif char in "]}":
            depth = max(depth - 1, 0)
        i += 1
    return best_key, best_line, best_depth
