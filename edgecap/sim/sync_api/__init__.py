"""A simulator of AssemblyAI's Sync API (one POST per clip) and of the token service's
forwarding path for it (`POST /v1/assemblyai/sync`), for tests and the bench."""

from edgecap.sim.sync_api.checks import SyncFault, SyncRequestRecord, parse_sync_fault
from edgecap.sim.sync_api.server import SyncApiSimulator

__all__ = ["SyncApiSimulator", "SyncFault", "SyncRequestRecord", "parse_sync_fault"]
