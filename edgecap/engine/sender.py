"""The send side of one streaming session (the I/O adapter for `plan_message`).

Frames leave the shared `AudioBuffer` as messages coalesced and paced by `plan_message`
and the session's `CatchUpPacer`. A task (`run`) sends whatever is waiting and then waits
for audio. Most of the time it waits, and capture adds one frame every 50 ms: `offer`,
called from the per-frame hand-off, then plans and sends the message right there (the same
rules), starting websockets' `send` eagerly: on an open connection with room in its write
buffer it finishes without yielding, so no task wakes up for the frame. If it must wait
for the socket, the task finishes that send. A frame becomes history (`mark_sent`) only
after its send returned, and each send is recorded in the session's `AudioTimeline`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from edgecap.audio.frame import Frame
from edgecap.engine.buffer import AudioBuffer, CatchUpPacer, pad_message, plan_message
from edgecap.engine.eager import Suspended, start_eagerly
from edgecap.engine.types import SessionSettings
from edgecap.turns.timeline import AudioTimeline


class Edge(Enum):
    """What the local side learnt with the newest captured frame, told to the provider in
    order with the audio (once the audio up to that frame is sent)."""

    SPEECH = "speech"  # the gate heard speech start
    QUIET = "quiet"  # speech ended (after the hang-over)
    END_TURN = "end_turn"  # the talk is over: finish the open turn now (ForceEndpoint)


class Sender:
    def __init__(
        self,
        ws: ClientConnection,
        settings: SessionSettings,
        buffer: AudioBuffer,
        *,
        audio_ready: asyncio.Event,
        timeline: AudioTimeline,
        turn_open: Callable[[], bool],
        encode: Callable[[bytes], bytes | str] | None = None,
        sample_rate: int | None = None,
        on_edge: Callable[[Edge, int], str | None] | None = None,
        first_s: float | None = None,
    ) -> None:
        self._ws = ws
        self._buffer = buffer
        self._audio_ready = audio_ready  # set when a frame waits and `offer` did not send it
        self._timeline = timeline
        self._turn_open = turn_open
        self._sample_rate = sample_rate or settings.params.sample_rate
        self._encode = encode  # the provider's audio message (None: the PCM itself)
        self._idle_history_ms = settings.idle_history_ms
        self._pacer = CatchUpPacer(
            settings.catchup_rate, None, settings.pacer_burst_seconds, first_s=first_s
        )
        self._idle = False  # the task waits for audio: frames may go out from `offer`
        self._handoff: tuple[Suspended, list[Frame]] | None = None  # a send it must finish
        self._on_edge = on_edge  # (edge, audio ms sent) -> message or None
        self._edges: deque[tuple[int, Edge]] = deque()  # (last frame seq then, edge)
        self._last_sent_seq = -1

    def edge(self, edge: Edge) -> None:
        """The local gate's verdict changed with the newest frame (or the talk is over):
        once the audio up to it is sent, the provider is told (and what it returns, e.g.
        OpenAI's commit or AssemblyAI's ForceEndpoint, is sent right after that audio).
        Rare (a few per utterance): the task handles it."""
        seq = self._buffer.newest_seq
        self._edges.append((-1 if seq is None else seq, edge))
        self._audio_ready.set()

    def offer(self) -> bool:
        """Capture added a frame to the buffer (on the loop, once per frame).

        While the task is idle, the next message is planned and sent right here. Returns
        False when the task must be woken instead: it is busy or pacing a backlog, the pacer
        asks for a wait, or the send has to wait for the socket (the task finishes it)."""
        ws = self._ws
        if not self._idle or ws.state is not State.OPEN or self._edges:
            return False
        now = time.monotonic()
        frames, wait = plan_message(self._buffer, self._pacer, now)
        if not frames:
            return wait <= 0  # too little audio for a message yet: the next frame retries
        try:
            suspended = start_eagerly(ws.send(self._message(frames)))
        except Exception:  # the task sends it again and meets the failure itself
            return False
        if suspended is None:
            self._sent(frames, now)
            return True
        self._idle = False
        self._handoff = (suspended, frames)
        return False

    async def run(self) -> None:
        """Send until cancelled (the session ends); a failed send raises."""
        try:
            while True:
                if self._handoff is not None:
                    suspended, frames = self._handoff
                    self._handoff = None
                    await suspended  # a send started by `offer`: finish it
                    self._sent(frames, time.monotonic())
                elif self._edges and self._edges[0][0] <= self._last_sent_seq:
                    await self._edge()
                elif not await self._send_message():
                    self._audio_ready.clear()
                    self._idle = True
                    await self._audio_ready.wait()
                    self._idle = False
        finally:
            self._idle = False
            if self._handoff is not None:  # cancelled before it could finish that send
                self._handoff[0].close()
                self._handoff = None

    async def _edge(self) -> None:
        _, edge = self._edges.popleft()
        hook = self._on_edge
        message = None if hook is None else hook(edge, self._timeline.sent_ms)
        if message:
            await self._ws.send(message)

    async def drain(self) -> None:
        """Send what is buffered now (not what capture adds meanwhile); after `run` ended."""
        left = self._buffer.backlog_ms
        while left > 0 and (sent := await self._send_message(draining=True)):
            left -= sent

    async def _send_message(self, *, draining: bool = False) -> int:
        """Send the next coalesced message when pacing allows; returns the ms sent (0:
        nothing to send)."""
        while True:
            frames, wait = plan_message(
                self._buffer, self._pacer, time.monotonic(), draining=draining
            )
            if frames:
                break
            if wait <= 0:
                return 0
            await asyncio.sleep(wait)  # pacing, not synchronisation
        await self._ws.send(self._message(frames))
        return self._sent(frames, time.monotonic())

    def _message(self, frames: list[Frame]) -> bytes | str:
        pcm = frames[0].pcm if len(frames) == 1 else b"".join(f.pcm for f in frames)
        message = pad_message(pcm, self._sample_rate)
        return message if self._encode is None else self._encode(message)

    def _sent(self, frames: list[Frame], now: float) -> int:
        """The send of `frames` returned: they become history; returns their ms."""
        ms = 0
        timeline = self._timeline
        for f in frames:
            ms += f.duration_ms
            timeline.append(f.duration_ms, f.captured_at)
        self._buffer.mark_sent(len(frames))
        self._last_sent_seq = frames[-1].seq
        self._pacer.sent(ms / 1000, now)
        if not self._turn_open():
            self._buffer.keep_recent_history(self._idle_history_ms)
        return ms
