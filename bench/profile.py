"""Where edgecap spends its CPU: py-spy samples of the streaming daemon (`--profile`).

py-spy comes from PyPI and is installed only into the benchmark's virtualenv by
`scripts/bench --profile`; it reads the target's memory without pausing it
(`--nonblocking`), so the daemon runs as it would. Only the thread holding the GIL is
sampled (`--gil`): that is the thread running Python code, which is where edgecap's user
CPU goes. Each sample is charged to a category by the innermost frame that matches one.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_LINE_NO = re.compile(r":\d+\)$")
_THREAD = re.compile(r"^thread \(\d+\): ")


CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "capture pipe → event loop (read, parse, timestamps)",
        (
            "CaptureProcess._readable ",
            "CaptureProcess._parse ",
            "CaptureProcess._frame ",
            "edgecap/audio/",
        ),
    ),
    ("WebSocket framing and socket writes (websockets)", ("websockets/", "SocketTransport")),
    ("MQTT and the spool (paho, SQLite)", ("paho/", "edgecap/mqtt/", "sqlite")),
    (
        "edgecap engine and provider (buffer, pacer, session, parsing)",
        ("edgecap/engine/", "edgecap/providers/"),
    ),
    ("other edgecap code", ("edgecap/",)),
    ("asyncio machinery (loop, tasks, events)", ("asyncio/", "selectors.py", "contextlib.py")),
)


@dataclass
class Profile:
    samples: int = 0
    seconds: float = 0.0
    threads: list[tuple[str, int]] = field(default_factory=list)
    categories: list[tuple[str, int]] = field(default_factory=list)
    self_frames: list[tuple[str, int]] = field(default_factory=list)
    error: str = ""


def category(frames: list[str]) -> str:
    """The category of the innermost frame that matches one (frames: outermost first)."""
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(needle in frame for needle in needles):
                return name
    return "other (interpreter, libraries)"


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def _frame(text: str) -> str:
    """`func (path/file.py:123)` -> `func (path/file.py)`."""
    return _LINE_NO.sub(")", text.strip())


def summarize_raw(raw: str, top: int = 12) -> Profile:
    """Thread split and the frames most often on top of the stack, from py-spy's raw
    (collapsed-stack) output: `thread (TID): NAME;frame;...;frame COUNT` per line."""
    threads: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        thread = _THREAD.sub("", parts[0]) if _THREAD.match(parts[0]) else "?"
        thread = re.sub(r"-(bench|edgecap)-[\w-]+$", "", thread)  # paho's per-client name
        threads[thread] += count
        frames[_frame(parts[-1])] += count
        categories[category(parts[1:])] += count
        total += count
    return Profile(
        samples=total,
        threads=threads.most_common(),
        categories=categories.most_common(),
        self_frames=frames.most_common(top),
    )


async def record(pid: int, seconds: float, out: Path, rate: int = 1000) -> Profile:
    binary = py_spy()
    if binary is None:
        return Profile(error="py-spy is not installed (scripts/bench --profile installs it)")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--threads",
        "--gil",
        "--nonblocking",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    try:
        raw = await asyncio.to_thread(out.read_text)
    except FileNotFoundError:
        raw = ""
    if proc.returncode != 0 or not raw:
        return Profile(error=f"py-spy failed: {stderr.decode(errors='replace')[-300:]}")
    profile = summarize_raw(raw)
    profile.seconds = seconds
    return profile
