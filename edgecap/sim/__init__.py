"""Local SIMULATORS for tests, benchmarks and demos (not the real services).

* :class:`StreamingSimulator`: AssemblyAI v3 Universal-Streaming server
  (``/v3/ws``) with its temporary-token endpoint (``/v3/token``), and the
  KeyPool-compatible proxy path in front of it (``/v1/assemblyai/v3/ws``).
* :class:`TokenServiceSimulator`: a KeyPool-compatible token service.
* :class:`FaultPlan`: scripted failures for the streaming simulator.
* :class:`OpenAIRealtimeSimulator` (:mod:`edgecap.sim.openai`): OpenAI's GA Realtime
  transcription API with reusable client secrets and a KeyPool-style secrets path;
  :class:`RealtimeFault` scripts its failures.

Run them from the command line with ``edgecap simulate [--provider openai]``.
"""

from edgecap.sim.faults import FaultPlan, parse_fault
from edgecap.sim.openai import OpenAIRealtimeSimulator, RealtimeFault, parse_realtime_fault
from edgecap.sim.records import HandshakeRecord, SessionRecord, TokenRequestRecord
from edgecap.sim.settings import StreamingSettings
from edgecap.sim.streaming import StreamingSimulator
from edgecap.sim.tokens import TOKEN_MODES, TokenMode, TokenServiceSimulator
from edgecap.sim.turns import Script, TurnGenerator

__all__ = [
    "TOKEN_MODES",
    "FaultPlan",
    "HandshakeRecord",
    "OpenAIRealtimeSimulator",
    "RealtimeFault",
    "Script",
    "SessionRecord",
    "StreamingSettings",
    "StreamingSimulator",
    "TokenMode",
    "TokenRequestRecord",
    "TokenServiceSimulator",
    "TurnGenerator",
    "parse_fault",
    "parse_realtime_fault",
]
