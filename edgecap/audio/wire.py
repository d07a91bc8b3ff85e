"""What the capture child writes on its pipe to the daemon, and the shared control bytes.

Standard library only: the child imports it with nothing else on its path.

Every message is a fixed header and a payload:

| field | type | meaning |
|---|---|---|
| kind | u8 | `FRAME`, `OPENED`, ... below |
| length | u32 | payload bytes |
| seq | u64 | frames: period number since the child started (an overrun leaves a gap) |
| monotonic | f64 | frames: `time.monotonic()` when the read returned (one clock for both) |
| wall | f64 | frames: `time.time()` at the same moment |

A frame's payload is the period's PCM; an event's payload is UTF-8 text (the device's own
error text for `FAILED`, what ALSA granted for `OPENED`).

The control bytes live in a shared memory file (memfd) both processes map: the daemon sets
`HOLD` while it only listens for speech (the child may then batch quiet frames) and `STOP`
when capture should end (the child exits after its next read).
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("<BIQdd")
CONTROL_SIZE = 2
HOLD = 0
"""Control byte: 1 while the daemon only listens (quiet frames may wait for the next write)."""
STOP = 1
"""Control byte: 1 once the daemon wants capture to end."""


# Message kinds (plain ints: `enum` would cost the child almost 1 MB).
FRAME = 1
OPENED = 2
FAILED = 3
"""The open or a read failed; the payload is the error text. The child exits next."""
OVERRUN = 4
BUSY = 5
"""A non-blocking probe found the device held by another program; the child now waits for
it in a blocking open."""
UNSUPPORTED = 6
"""The device opened but does not grant the format; the payload says what it granted."""


def message(
    kind: int, payload: bytes = b"", seq: int = 0, mono: float = 0.0, wall: float = 0.0
) -> bytes:
    return HEADER.pack(kind, len(payload), seq, mono, wall) + payload


__all__ = [
    "BUSY",
    "CONTROL_SIZE",
    "FAILED",
    "FRAME",
    "HEADER",
    "HOLD",
    "OPENED",
    "OVERRUN",
    "STOP",
    "UNSUPPORTED",
    "message",
]
