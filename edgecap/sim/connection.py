"""Connection faults both simulators play: a dropped TCP connection and a stalled peer."""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection

from edgecap.sim.records import Notifier


async def drop(ws: ServerConnection) -> None:
    """Close the TCP connection without a close frame (1006 at the client)."""
    ws.transport.abort()
    await ws.wait_closed()


async def stall(ws: ServerConnection, stalled: set[ServerConnection], notifier: Notifier) -> None:
    """Stop reading and sending (`stalled` holds it meanwhile, for the simulator's stop);
    return when the connection is finally gone."""
    notifier.notify()
    stalled.add(ws)
    try:
        ws.transport.pause_reading()
        await ws.wait_closed()
    finally:
        stalled.discard(ws)
