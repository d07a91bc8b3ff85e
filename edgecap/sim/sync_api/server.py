"""The Sync API simulator's HTTP server (asyncio streams + h11: keep-alive, Content-Length
and chunked request bodies, so a live upload arrives as it is sent).

One port serves `POST /v1/transcribe/live` and `POST /v1/transcribe` (the API key raw in
`Authorization`) and the token service's forwarding path `POST /v1/assemblyai/sync`
(`Authorization: Bearer <device credential>`; its base URL is `token_service_url`).
Faults scheduled with `schedule_fault` meet the next requests in order. Billed audio is
counted per transcribed clip (seconds of audio sent, as the real API bills).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable
from types import TracebackType

import h11

from edgecap.sim.sync_api.checks import (
    LIVE_PATH,
    SERVICE_PATH,
    WHOLE_PATH,
    Answer,
    SyncFault,
    SyncRequestRecord,
    check_auth,
    check_request,
    transcribe,
)
from edgecap.sim.turns import Script

log = logging.getLogger("edgecap.sim")

PATHS = (LIVE_PATH, WHOLE_PATH, SERVICE_PATH)


class SyncApiSimulator:
    def __init__(
        self,
        script: Iterable[str] = (),
        *,
        api_key: str = "sim-sync-key",
        credential: str = "sim-team-credential",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        self.script = Script(script)
        self.api_key = api_key
        self.credential = credential
        self.host, self.port = host, port
        self.latency = latency
        self.requests: list[SyncRequestRecord] = []
        self.billed_audio_seconds = 0.0
        self._faults: deque[SyncFault] = deque()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.answered = asyncio.Event()
        """Set after every answer (tests await it; cleared by them)."""

    # -- addresses -------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The live-upload endpoint (sync.url with an API key)."""
        return self.base + LIVE_PATH

    @property
    def token_service_url(self) -> str:
        """The token-service base (auth.token_service_url): `/sync` is appended to it."""
        return self.base + "/v1/assemblyai"

    def schedule_fault(self, fault: SyncFault) -> None:
        for _ in range(fault.count):
            self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def transcribed(self) -> list[SyncRequestRecord]:
        return [r for r in self.requests if r.status == 200]

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> SyncApiSimulator:
        self._server = await asyncio.start_server(self._connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SyncApiSimulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- one connection --------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            if self._faults and self._faults[0].kind == "refuse":
                self._faults.popleft()
                writer.transport.abort()
                return
            while await self._one_request(conn, reader, writer):
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError) as exc:
            log.debug("sync sim: connection ended: %s", exc)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> object:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            return event

    async def _one_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        event = await self._event(conn, reader)
        if not isinstance(event, h11.Request):
            return False
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        path = event.target.decode().split("?", 1)[0]
        fault = self._faults.popleft() if self._faults else None
        way_in = check_auth(path, headers.get("authorization"), self.api_key, self.credential)
        record = SyncRequestRecord(
            path=path,
            way_in=way_in or "refused",
            model=headers.get("x-aai-model"),
            chunked="chunked" in headers.get("transfer-encoding", "").lower(),
            fault=None if fault is None else f"{fault.kind}{fault.status or ''}",
            index=len(self.requests),
            received_at=time.monotonic(),
        )
        self.requests.append(record)
        body = bytearray()
        while True:
            part = await self._event(conn, reader)
            if isinstance(part, h11.Data):
                body += part.data
                if fault is not None and fault.kind == "drop":
                    writer.transport.abort()  # cut mid-upload: no answer
                    return False
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return False
        record.body_done_at = time.monotonic()
        if fault is not None and fault.kind == "hang":
            await asyncio.Event().wait()  # until the client gives up (the server stops)
        answer = self._answer(
            record, path=path, way_in=way_in, headers=headers, body=bytes(body), fault=fault
        )
        if self.latency:
            await asyncio.sleep(self.latency)  # the service's processing time
        record.status = answer.status
        self._respond(conn, writer, answer, fault)
        record.answered_at = time.monotonic()
        await writer.drain()
        self.answered.set()
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def _answer(
        self,
        record: SyncRequestRecord,
        *,
        path: str,
        way_in: str | None,
        headers: dict[str, str],
        body: bytes,
        fault: SyncFault | None,
    ) -> Answer:
        if path not in PATHS:
            return Answer(404, {"detail": "Not Found"})
        if way_in is None:
            return Answer(401, {"detail": "Invalid API key" if path != SERVICE_PATH else "no"})
        if fault is not None and fault.kind == "status":
            return Answer(fault.status, {"error_code": "simulated", "message": "fault"})
        error, pcm, rate = check_request(record, headers.get("content-type", ""), body)
        if error is not None:
            return error
        result = transcribe(self.script, pcm, rate, uuid.uuid4().hex)
        if not (record.config or {}).get("timestamps"):
            result["words"] = [
                {k: v for k, v in w.items() if k not in ("start", "end")} for w in result["words"]
            ]
        record.text = result["text"]
        self.billed_audio_seconds += record.audio_ms / 1000
        return Answer(200, result)

    @staticmethod
    def _respond(
        conn: h11.Connection, writer: asyncio.StreamWriter, answer: Answer, fault: SyncFault | None
    ) -> None:
        data = json.dumps(answer.body).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
        if fault is not None and fault.retry_after is not None:
            headers.append(("retry-after", f"{fault.retry_after:g}"))
        writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers)) or b"")
        writer.write(conn.send(h11.Data(data=data)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
