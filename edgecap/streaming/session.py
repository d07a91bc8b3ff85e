"""One v3 streaming session over a WebSocket (the I/O adapter).

Opens the connection with a single-use token, waits for `Begin`, then runs a sender
(frames from the shared `AudioBuffer`, coalesced and paced) and a receiver (server
messages -> final turns) until the server ends the session, the cap is reached, or the
daemon stops; a deliberate end drains the buffer, sends `Terminate` and waits a bounded
time for `Termination`. Whatever ends the session is classified into one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from edgecap import __version__
from edgecap.protocol.errors import Classified, ErrorClass, classify_close, classify_http_status
from edgecap.protocol.messages import (
    TERMINATE,
    Begin,
    ProtocolError,
    ServerError,
    ServerWarning,
    Termination,
    Turn,
    parse_server_message,
    update_configuration,
)
from edgecap.protocol.turns import TurnAssembler
from edgecap.protocol.url import StreamParams, redact_url, streaming_url
from edgecap.streaming.buffer import AudioBuffer, CatchUpPacer
from edgecap.timeline import AudioTimeline
from edgecap.transcript import TranscriptTurn, build_transcript_turn

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionSettings:
    url: str
    params: StreamParams
    device_id: str
    connect_timeout: float = 10.0
    begin_timeout: float = 10.0
    terminate_timeout: float = 5.0
    max_session_seconds: float = 3600.0
    catchup_rate: float = 1.2


class SessionFailed(Exception):
    """The session could not be opened (stage: handshake or begin)."""

    def __init__(self, classified: Classified, stage: str) -> None:
        super().__init__(classified.line())
        self.classified = classified
        self.stage = stage


@dataclass
class SessionResult:
    session_id: str
    ended_by: str  # "stop", "cap", "server"
    classified: Classified | None
    termination: Termination | None
    began_at: float
    ended_at: float
    audio_sent_ms: int
    turns: int
    unfinished_text: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.ended_at - self.began_at


class StreamingSession:
    def __init__(
        self,
        settings: SessionSettings,
        buffer: AudioBuffer,
        audio_ready: asyncio.Event,
        on_turn: Callable[[TranscriptTurn], None],
    ) -> None:
        self.settings = settings
        self._buffer = buffer
        self._audio_ready = audio_ready
        self._on_turn = on_turn
        self._ws: ClientConnection | None = None
        self.begin: Begin | None = None
        self._assembler = TurnAssembler(settings.params.format_turns)
        self._timeline = AudioTimeline()
        self._termination: Termination | None = None
        self._server_error: ServerError | None = None
        self._terminate_sent = False
        self._turns = 0
        self._pacer = CatchUpPacer(settings.catchup_rate, time.monotonic())

    # -- opening -----------------------------------------------------------------------

    async def open(self, token: str) -> Begin:
        s = self.settings
        url = streaming_url(s.url, s.params, token)
        shown = redact_url(url)
        try:
            self._ws = await connect(
                url,
                open_timeout=s.connect_timeout,
                user_agent_header=f"edgecap/{__version__}",
                compression=None,  # PCM does not compress; deflate only costs CPU
                ping_interval=10,
                ping_timeout=10,
                close_timeout=2,
                max_queue=64,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise SessionFailed(classify_http_status(status), "handshake") from exc
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            hint = f"cannot connect to {shown}: {exc or type(exc).__name__}"
            raise SessionFailed(
                Classified(ErrorClass.TRANSIENT, None, "", hint), "handshake"
            ) from exc
        try:
            self.begin = await asyncio.wait_for(self._wait_begin(), s.begin_timeout)
        except TimeoutError as exc:
            await self._ws.close()
            hint = f"no Begin within {s.begin_timeout:g} s after connecting"
            raise SessionFailed(Classified(ErrorClass.TRANSIENT, None, "", hint), "begin") from exc
        except ConnectionClosed as exc:
            raise SessionFailed(self._classify_end(), "begin") from exc
        return self.begin

    async def _wait_begin(self) -> Begin:
        assert self._ws is not None
        while True:
            raw = await self._ws.recv()
            try:
                message = parse_server_message(raw)
            except ProtocolError as exc:
                log.warning("ignoring malformed server message before Begin: %s", exc)
                continue
            if isinstance(message, Begin):
                return message
            if isinstance(message, ServerError):
                self._server_error = message
            else:
                log.debug("ignoring %s before Begin", type(message).__name__)

    # -- running -----------------------------------------------------------------------

    async def update_configuration(self, **fields: float | int) -> bool:
        """Send UpdateConfiguration on the live connection (no reconnect, no ack).

        Returns False when the session is not connected.
        """
        if self._ws is None or self.begin is None:
            return False
        try:
            await self._ws.send(update_configuration(**fields))
        except ConnectionClosed:
            return False
        return True

    async def run(self, stop: asyncio.Event) -> SessionResult:
        """Stream until the server ends the session, the cap is reached, or `stop` is set."""
        assert self._ws is not None
        assert self.begin is not None
        began = time.monotonic()
        self._pacer = CatchUpPacer(self.settings.catchup_rate, began)
        sender = asyncio.create_task(self._send_loop(), name="edgecap-send")
        receiver = asyncio.create_task(self._receive_loop(), name="edgecap-receive")
        stopper = asyncio.create_task(stop.wait(), name="edgecap-stop-wait")
        cap = max(1.0, self.settings.max_session_seconds - self.settings.terminate_timeout)
        done, _ = await asyncio.wait(
            {sender, receiver, stopper}, timeout=cap, return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        if receiver in done:
            ended_by = "server"
            sender.cancel()
        else:
            ended_by = "stop" if stop.is_set() else "cap"
            if sender in done and sender.exception() is not None:
                ended_by = "server"  # sending failed: the connection is gone
            else:
                await self._finish(sender, receiver)
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        unfinished = self._assembler.flush()
        classified = self._classify_end()
        return SessionResult(
            session_id=self.begin.id,
            ended_by=ended_by,
            classified=classified,
            termination=self._termination,
            began_at=began,
            ended_at=time.monotonic(),
            audio_sent_ms=self._timeline.sent_ms,
            turns=self._turns,
            unfinished_text=unfinished.transcript if unfinished else "",
        )

    async def _finish(self, sender: asyncio.Task[None], receiver: asyncio.Task[None]) -> None:
        """Drain what is buffered, send Terminate, wait for Termination (bounded)."""
        assert self._ws is not None
        timeout = self.settings.terminate_timeout
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
        try:
            await asyncio.wait_for(self._drain(), timeout)
            await self._ws.send(TERMINATE)
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
            await self._ws.close()

    async def _send_message(self, pacer: CatchUpPacer) -> bool:
        """Send the next coalesced message when pacing allows; False if nothing buffered."""
        assert self._ws is not None
        frames = self._buffer.peek_message()
        if not frames:
            return False
        duration = sum(f.duration_ms for f in frames) / 1000
        delay = pacer.delay(time.monotonic(), duration)
        if delay > 0:
            await asyncio.sleep(delay)  # pacing, not synchronisation
            frames = self._buffer.peek_message()
            duration = sum(f.duration_ms for f in frames) / 1000
        await self._ws.send(b"".join(f.pcm for f in frames))
        self._buffer.consume(len(frames))
        pacer.sent(duration)
        for f in frames:
            self._timeline.append(f.duration_ms, f.captured_at)
        return True

    async def _send_loop(self) -> None:
        while True:
            if not await self._send_message(self._pacer):
                self._audio_ready.clear()
                await self._audio_ready.wait()

    async def _drain(self) -> None:
        while await self._send_message(self._pacer):
            pass

    async def _receive_loop(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._ws:
                try:
                    message = parse_server_message(raw)
                except ProtocolError as exc:
                    log.warning("ignoring malformed server message: %s", exc)
                    continue
                self._handle(message)

    def _handle(self, message: object) -> None:
        if isinstance(message, Turn):
            final = self._assembler.feed(message)
            if final is not None and final.transcript.strip():
                assert self.begin is not None
                self._turns += 1
                self._on_turn(
                    build_transcript_turn(
                        final,
                        device_id=self.settings.device_id,
                        session_id=self.begin.id,
                        speech_model=self.settings.params.speech_model,
                        timeline=self._timeline,
                    )
                )
        elif isinstance(message, Termination):
            self._termination = message
        elif isinstance(message, ServerError):
            self._server_error = message
            log.warning("server error %s: %s", message.code, message.message)
        elif isinstance(message, ServerWarning):
            log.warning("server warning %s: %s", message.code, message.message)

    def _classify_end(self) -> Classified:
        ws = self._ws
        code = ws.close_code if ws is not None else None
        reason = (ws.close_reason if ws is not None else "") or ""
        err = self._server_error
        if err is not None:  # the Error frame carries the full reason; the close may not
            code = err.code if err.code is not None else code
            reason = err.message or reason
        return classify_close(code, reason, after_terminate=self._terminate_sent)
