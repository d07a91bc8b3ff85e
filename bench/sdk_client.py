"""The AssemblyAI SDK contender: `python -m bench.sdk_client --host ws://HOST:PORT --device DEV`.

The official `assemblyai` SDK's v3 `StreamingClient` (sync), used as its documentation
shows: `connect()` with the streaming parameters, `stream()` fed with 50 ms periods read
from ALSA (the same capture as edgecap and the floor), `disconnect(terminate=True)` on
SIGTERM. Parameters match edgecap's defaults (model, formatted turns, endpointing). Prints
`final TURN_ORDER MONOTONIC` from its Turn handler for every final formatted turn.
"""

from __future__ import annotations

import argparse
import sys
import time

from assemblyai.streaming.v3 import (
    SpeechModel,
    StreamingClient,
    StreamingClientOptions,
    StreamingError,
    StreamingEvents,
    StreamingParameters,
    TurnEvent,
)

from bench.capture import RATE, open_capture, periods, stop_on_sigterm


def on_turn(client: StreamingClient, event: TurnEvent) -> None:
    if event.end_of_turn and event.turn_is_formatted:
        print(f"final {event.turn_order} {time.monotonic():.6f}", flush=True)


def on_error(client: StreamingClient, error: StreamingError) -> None:
    print(f"error {error}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="ws://127.0.0.1:PORT")
    parser.add_argument("--device", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    stop = stop_on_sigterm()
    pcm = open_capture(args.device)
    client = StreamingClient(StreamingClientOptions(api_key=args.api_key, api_host=args.host))
    client.on(StreamingEvents.Turn, on_turn)
    client.on(StreamingEvents.Error, on_error)
    client.connect(
        StreamingParameters.model_validate(
            {
                "sample_rate": RATE,
                "speech_model": SpeechModel.universal_streaming_english,
                "format_turns": True,
                "end_of_turn_confidence_threshold": 0.4,
                "min_turn_silence": 400,
                "max_turn_silence": 1280,
            }
        )
    )
    client.stream(periods(pcm, stop))
    client.disconnect(terminate=True)
    pcm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
