"""One v3 streaming session over a WebSocket (the I/O adapter).

Opens the connection with a single-use token, waits for `Begin`, then runs a sender
(`Sender`: frames from the shared `AudioBuffer`, coalesced and paced by `plan_message`,
sent straight from the per-frame hand-off while it is idle) and a receiver (server
messages -> final turns) until the server ends the session or the engine closes it
(`request_close`: the controller decided to stop, rotate or close an idle session). A
deliberate end drains the buffer (not on a rotation), sends `Terminate` and waits a
bounded time for `Termination`. Every Turn message is reported (`on_activity`) so that the
controller can find a quiet point to rotate at.

Replay: each final turn confirms the audio up to its last word; a session that ends
without `Termination` puts what was sent since then back into the buffer for the next
session (see `AudioBuffer`), so a drop mid-turn loses no words and no published turn is
sent twice.

Hostile input: a server message that cannot be used (see `protocol/limits.py`) is one
WARNING line and skipped; the session goes on. Partials are rate limited and warnings
budgeted (`inbound.py`). Whatever ends `open()` or `run()`, a normal end, a failure or an
unexpected exception or cancellation, the connection is closed (AssemblyAI bills an open
session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from edgecap import __version__
from edgecap.engine.buffer import AudioBuffer
from edgecap.engine.inbound import InboundLog, PartialPacer
from edgecap.engine.sender import Edge, Sender
from edgecap.engine.states import CloseReason, EndedBy
from edgecap.engine.types import SessionFailed, SessionResult, SessionSettings
from edgecap.providers.assemblyai.protocol import AssemblyAIProvider
from edgecap.providers.base import (
    MessageSkipped,
    ProviderEvent,
    ServerFailed,
    ServerWarned,
    SessionOpened,
    SessionTerminated,
    StreamingProvider,
    TurnsRevised,
    TurnUpdate,
)
from edgecap.providers.failures import Classified, classify_network
from edgecap.providers.turn import SpeakerRevision, Turn
from edgecap.turns.timeline import AudioTimeline
from edgecap.turns.transcript import TranscriptTurn, build_transcript_turn

log = logging.getLogger(__name__)


class StreamingSession:
    def __init__(
        self,
        settings: SessionSettings,
        buffer: AudioBuffer,
        audio_ready: asyncio.Event,
        on_turn: Callable[[TranscriptTurn], None],
        on_partial: Callable[[str, Turn], None] | None = None,
        *,
        on_activity: Callable[[bool], None] | None = None,
        on_revision: Callable[[str, SpeakerRevision], None] | None = None,
        preroll: bool = False,
    ) -> None:
        """`preroll`: opened by a voice onset, so the backlog is the pre-roll: its first
        message may carry `settings.preroll_burst_seconds` of it."""
        self.settings = settings
        self._first_s = settings.preroll_burst_seconds if preroll else None
        self._buffer = buffer
        self._audio_ready = audio_ready
        self._on_turn = on_turn
        self._on_partial = on_partial  # (session id, a Turn that is not final yet)
        self._on_activity = on_activity  # each Turn message: (final?)
        self._on_revision = on_revision  # (session id, revised speaker labels)
        self._ws: ClientConnection | None = None
        self.begin: SessionOpened | None = None
        self.provider: StreamingProvider = settings.provider or AssemblyAIProvider(
            settings.url, settings.params
        )
        self._stream = self.provider.open_stream()
        self._timeline = AudioTimeline()
        self._termination: SessionTerminated | None = None
        self._server_error: ServerFailed | None = None
        self._terminate_sent = False
        self._turns = 0
        self._close_requested = asyncio.Event()
        self._early_edges: list[Edge] = []
        self._settled = asyncio.Event()  # no turn open: every committed turn is final
        self._close_as = EndedBy.STOP
        self._close_reason: CloseReason | None = None
        self._sender: Sender | None = None  # while `run()` runs
        self.finish_by: float | None = None
        """Monotonic time by which a stopping session must have ended (the daemon's stop
        budget): the drain and the wait for `Termination` share what is left of it."""
        self._partials = PartialPacer(self._emit_partial)
        self._inbound = InboundLog()

    # -- opening -----------------------------------------------------------------------

    async def open(self, token: str) -> SessionOpened:
        s = self.settings
        request = self.provider.connect_request(token)
        shown = request.shown
        try:
            self._ws = await connect(
                request.url,
                additional_headers=list(request.headers) or None,
                subprotocols=[Subprotocol(p) for p in request.subprotocols] or None,
                open_timeout=s.connect_timeout,
                user_agent_header=f"edgecap/{__version__}",
                compression=None,  # PCM does not compress; deflate only costs CPU
                ping_interval=10,
                ping_timeout=10,
                close_timeout=2,
                max_queue=64,
                max_size=self.provider.max_message_bytes,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise SessionFailed(self.provider.classify_upgrade(status), "handshake") from exc
        except TimeoutError as exc:
            detail = (
                f"{shown} did not complete the WebSocket handshake within "
                f"{s.connect_timeout:g} s (a name lookup, the connection or the server's "
                "answer hangs); check the network and streaming.url"
            )
            raise SessionFailed(classify_network(detail), "handshake") from exc
        except (OSError, InvalidHandshake) as exc:
            detail = f"cannot connect to {shown}: {exc or type(exc).__name__}"
            raise SessionFailed(classify_network(detail), "handshake") from exc
        opened = False
        try:
            for message in self.provider.opening_messages():  # e.g. OpenAI's session.update
                await self._ws.send(message)
            self.begin = await asyncio.wait_for(self._wait_begin(), s.begin_timeout)
            opened = True
        except TimeoutError as exc:
            detail = (
                f"the streaming server accepted the connection but sent no Begin within "
                f"{s.begin_timeout:g} s: it is overloaded or not an AssemblyAI v3 endpoint "
                "(check streaming.url); retrying"
            )
            raise SessionFailed(classify_network(detail), "begin") from exc
        except ConnectionClosed as exc:
            raise SessionFailed(self._classify_end(), "begin") from exc
        finally:
            if not opened:  # whatever happened (also a cancellation): no session is left open
                await self._close_connection()
        return self.begin

    async def _wait_begin(self) -> SessionOpened:
        assert self._ws is not None
        while True:
            raw = await self._ws.recv()
            for event in self._stream.receive(raw, sent_ms=0):
                if isinstance(event, SessionOpened):
                    return event
                if isinstance(event, ServerFailed):  # refused before it began: no need to wait
                    self._server_error = event
                    raise SessionFailed(self._classify_end(), "begin")
                if isinstance(event, MessageSkipped):
                    self._inbound.skipped(event.error)
                else:
                    log.debug("ignoring %s before the session began", type(event).__name__)

    async def terminate(self) -> SessionTerminated | None:
        """End an opened session that will not `run()`: Terminate, then wait (bounded) for
        Termination and the close. Used by `edgecap doctor` so its probe bills about a second."""
        assert self._ws is not None
        try:
            terminate = self.provider.terminate_message()
            if not terminate:  # nothing was sent, nothing to wait for (OpenAI)
                self._terminate_sent = True
                self._termination = SessionTerminated()
                return self._termination
            await self._ws.send(terminate)
            self._terminate_sent = True
            await asyncio.wait_for(self._receive_loop(), self.settings.terminate_timeout)
        except (TimeoutError, ConnectionClosed):
            log.warning("no Termination after Terminate; closing the connection")
        finally:
            await self._ws.close()
        return self._termination

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake (the server notices the
        close and stops billing)."""
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    @property
    def turn_open(self) -> bool:
        """A turn has started (partials came) and is not final yet."""
        return self._stream.turn_open

    # -- running -----------------------------------------------------------------------

    async def update_configuration(self, **fields: float | int | bool | list[str] | str) -> bool:
        """Send UpdateConfiguration on the live connection (no reconnect, no ack).

        Returns False when the session is not connected.
        """
        if self._ws is None or self.begin is None:
            return False
        try:
            await self._ws.send(self.provider.update_message(**fields))
        except ConnectionClosed:
            return False
        return True

    def request_close(self, reason: CloseReason, *, drain: bool) -> None:
        """End the running session: Terminate (after sending what is buffered if `drain`)
        and wait, bounded, for Termination. `run()` then returns."""
        if not self._close_requested.is_set():
            self._close_as = EndedBy.STOP if drain else EndedBy.ROTATE
            self._close_reason = reason
            self._close_requested.set()

    async def run(self) -> SessionResult:
        """Stream until the server ends the session or `request_close` is called."""
        assert self._ws is not None
        assert self.begin is not None
        s = self.settings
        began = time.monotonic()
        self._buffer.rewind()  # nothing of an earlier session is pending confirmation
        replayed = self._buffer.backlog_ms
        self._sender = Sender(
            self._ws,
            s,
            self._buffer,
            audio_ready=self._audio_ready,
            timeline=self._timeline,
            turn_open=lambda: self.turn_open,
            encode=self._stream.encode_audio,
            sample_rate=self.provider.sample_rate,
            on_edge=self._edge_reached,
            first_s=self._first_s,
        )
        for edge in self._early_edges:  # edges before it ran (opened by a voice onset)
            self._sender.edge(edge)
        self._early_edges.clear()
        sender = asyncio.create_task(self._sender.run(), name="edgecap-send")
        receiver = asyncio.create_task(self._receive_loop(), name="edgecap-receive")
        closer = asyncio.create_task(self._close_requested.wait(), name="edgecap-close-wait")
        tasks = (sender, receiver, closer)
        try:
            ended_by = await self._until_end(*tasks)
        finally:  # also when a task raised something unexpected, or `run` was cancelled
            for task in tasks:
                task.cancel()
            self._partials.close()
            await self._close_connection()
            self._inbound.close()
        unfinished = self._stream.unfinished()
        result = SessionResult(
            session_id=self.begin.id,
            ended_by=ended_by,
            classified=self._classify_end(),
            termination=self._termination,
            began_at=began,
            ended_at=time.monotonic(),
            audio_sent_ms=self._timeline.sent_ms,
            turns=self._turns,
            unfinished_text=unfinished.transcript if unfinished else "",
            close_reason=self._close_reason if ended_by is not EndedBy.SERVER else None,
        )
        if result.clean:
            self._buffer.confirm_all()
        else:
            result.replay_ms = self._buffer.rewind()
        if replayed >= 1000:
            log.info("session %s replayed %.1f s of buffered audio", self.begin.id, replayed / 1e3)
        return result

    async def _until_end(
        self,
        sender: asyncio.Task[None],
        receiver: asyncio.Task[None],
        closer: asyncio.Task[bool],
    ) -> EndedBy:
        """Wait for the first of: the server ends it, sending fails, a close request; end
        the session accordingly. An unexpected exception of the sender or the receiver is
        raised here."""
        assert self._ws is not None
        done, _ = await asyncio.wait(
            {sender, receiver, closer}, return_when=asyncio.FIRST_COMPLETED
        )
        closer.cancel()
        if receiver in done:
            ended_by = EndedBy.SERVER
            sender.cancel()
        elif sender in done and sender.exception() is not None:
            ended_by = EndedBy.SERVER  # sending failed: the connection is gone
            await self._close_connection()
        else:
            ended_by = self._close_as
            await self._finish(sender, receiver, drain=ended_by is EndedBy.STOP)
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        return ended_by

    async def _close_connection(self) -> None:
        """Close the WebSocket (the server stops billing when it sees the close). If the
        close itself fails or is cancelled, the TCP connection is cut instead."""
        ws = self._ws
        if ws is None:
            return
        if self.finish_by is not None:  # stopping: the closing handshake gets what is left
            ws.close_timeout = max(0.05, self.finish_by - time.monotonic())
        try:
            await ws.close()
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
        except Exception as exc:  # must not hide what ended the session
            log.debug("closing the WebSocket failed (%r); connection cut", exc)
            ws.transport.abort()

    async def _finish(
        self, sender: asyncio.Task[None], receiver: asyncio.Task[None], *, drain: bool
    ) -> None:
        """Send Terminate and wait for Termination (bounded). When stopping (`drain`), what
        is buffered is sent first; on a rotation it waits for the next session instead."""
        assert self._ws is not None
        timeout = self.settings.terminate_timeout
        if self.finish_by is not None:  # stopping: the drain and the wait share the budget
            timeout = max(0.1, min(timeout, (self.finish_by - time.monotonic()) / 2))
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
        try:
            if drain:
                with contextlib.suppress(TimeoutError):
                    assert self._sender is not None
                    await asyncio.wait_for(self._sender.drain(), timeout)
            terminate = self.provider.terminate_message()
            if not terminate:  # no termination handshake (OpenAI): end speech, wait, close
                await self._settle(limit_s=timeout)
                return
            await self._ws.send(terminate)
            self._terminate_sent = True
            await asyncio.wait_for(asyncio.shield(receiver), timeout)
        except (TimeoutError, ConnectionClosed):
            if not receiver.done():
                log.warning(
                    "no Termination within %g s after Terminate; closing the connection "
                    "(the server stops billing when it notices the close)",
                    timeout,
                )
        finally:
            receiver.cancel()
            await self._close_connection()

    def speech_edge(self, speaking: bool) -> None:
        """The local voice gate's verdict changed with the newest captured frame (speech
        began, or ended after the hang-over): the provider hears of it in order with the
        audio (OpenAI without server turn detection commits the item there)."""
        self._edge(Edge.SPEECH if speaking else Edge.QUIET)

    def end_turn(self) -> None:
        """The local side decided the talk is over: once the audio captured so far is sent,
        a turn the server still has open is ended now (ForceEndpoint) instead of after the
        server's own end-of-turn silence; the session is closed once it is final."""
        self._edge(Edge.END_TURN)

    def _edge(self, edge: Edge) -> None:
        if self._sender is not None:
            self._sender.edge(edge)
        else:
            self._early_edges.append(edge)

    def _edge_reached(self, edge: Edge, audio_ms: int) -> str | None:
        if edge is Edge.END_TURN:
            return self._stream.end_turn(audio_ms=audio_ms)
        return self._stream.local_speech(edge is Edge.SPEECH, audio_ms=audio_ms)

    async def _settle(self, limit_s: float) -> None:
        """End local speech (the provider may commit what it has) and wait, bounded, until
        every committed turn is final; then the end is clean (nothing to replay)."""
        assert self._ws is not None
        commit = self._stream.local_speech(False, audio_ms=self._timeline.sent_ms)
        if commit:
            await self._ws.send(commit)
        self._terminate_sent = True
        if self._stream.turn_open:
            # the last server message may have set it before this commit (or the one the
            # speech edge just sent) existed: the receiver sets it again once all is final
            self._settled.clear()
            try:
                await asyncio.wait_for(self._settled.wait(), limit_s)
            except TimeoutError:
                log.warning(
                    "the last turn was not final within %g s; closing the connection (its "
                    "audio is replayed in the next session)",
                    limit_s,
                )
                return
        self._termination = SessionTerminated()  # billed by audio, not by session time

    def audio_arrived(self) -> bool:
        """Capture added a frame to the buffer (on the loop, once per frame): while the
        sender is idle the frame is sent from here (see `Sender.offer`). False: wake the
        sender task through `audio_ready` instead."""
        sender = self._sender
        return sender is not None and sender.offer()

    async def _receive_loop(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._ws:
                for event in self._stream.receive(raw, sent_ms=self._timeline.sent_ms):
                    self._handle(event)
                if self._stream.turn_open:
                    self._settled.clear()
                else:
                    self._settled.set()

    def _handle(self, event: ProviderEvent) -> None:
        if isinstance(event, TurnUpdate):
            turn = event.turn
            self._inbound.repaired(turn)
            if event.final:
                self._partials.final(turn.turn_order)  # the last text before the final
                self._on_final(turn)
            elif self._on_partial is not None:
                self._partials.offer(turn)
            if self._on_activity is not None:
                self._on_activity(event.final)
        elif isinstance(event, MessageSkipped):
            self._inbound.skipped(event.error)
        elif isinstance(event, TurnsRevised):
            if self._on_revision is not None and self.begin is not None:
                self._on_revision(self.begin.id, event.revision)
        elif isinstance(event, SessionTerminated):
            self._termination = event
        elif isinstance(event, ServerFailed):
            self._server_error = event
            self._inbound.warning("server error %s: %s", event.code, event.message)
        elif isinstance(event, ServerWarned):
            self._inbound.warning("server warning %s: %s", event.code, event.message)

    def _emit_partial(self, turn: Turn) -> None:
        assert self.begin is not None
        assert self._on_partial is not None
        self._on_partial(self.begin.id, turn)

    def _on_final(self, final: Turn) -> None:
        end_ms = final.words[-1].end_ms if final.words else final.audio_end_ms
        if end_ms is not None:  # the server has transcribed the audio up to the turn's end
            self._buffer.confirm_until(end_ms)
        if not final.transcript.strip():
            return
        assert self.begin is not None
        self._turns += 1
        self._on_turn(
            build_transcript_turn(
                final,
                device_id=self.settings.device_id,
                session_id=self.begin.id,
                speech_model=self.provider.model,
                provider=self.provider.name,
                timeline=self._timeline,
            )
        )

    def _classify_end(self) -> Classified:
        ws = self._ws
        code = ws.close_code if ws is not None else None
        reason = (ws.close_reason if ws is not None else "") or ""
        err = self._server_error
        if err is not None:  # the Error frame carries the full reason; the close may not
            code = err.code if err.code is not None else code
            reason = err.message or reason
        return self.provider.classify_close(code, reason, after_terminate=self._terminate_sent)


__all__ = ["SessionFailed", "SessionResult", "SessionSettings", "StreamingSession"]
