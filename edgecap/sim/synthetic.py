"""Synthetic final turns for benchmarks (sans-I/O).

The streaming simulator can send a burst of final turns on a live session, independent of
the audio, so a benchmark can time many turns quickly: from the moment the simulator sends
a final ``Turn`` to the moment the client's output (an MQTT message) arrives.
"""

from __future__ import annotations

from typing import Any

from edgecap.sim.turns import split_words, spread_words

SYNTHETIC_TURN_TEXT = "Synthetic turn for the benchmark."
SYNTHETIC_SPAN_MS = 600.0

Message = dict[str, Any]


def synthetic_finals(
    order: int, text: str, position_ms: float, format_turns: bool
) -> list[Message]:
    """The final ``Turn`` message(s) of one turn whose words end at ``position_ms``.

    The words are spread over the last 600 ms of the session's audio (so their times map
    back to audio the client sent). With ``format_turns`` the unformatted final comes first
    and the formatted one second, with the same ``turn_order``, as the server sends them.
    """
    pairs = split_words(text) or [(text, text.lower())]
    end = max(position_ms, SYNTHETIC_SPAN_MS)
    spans = spread_words([len(p) for _, p in pairs], [(end - SYNTHETIC_SPAN_MS, end)])
    variants = [False, True] if format_turns else [False]
    return [
        {
            "type": "Turn",
            "turn_order": order,
            "turn_is_formatted": formatted,
            "end_of_turn": True,
            "transcript": text if formatted else " ".join(p for _, p in pairs),
            "end_of_turn_confidence": 0.9,
            "words": [
                {
                    "start": start,
                    "end": stop,
                    "text": shown if formatted else plain,
                    "confidence": 0.95,
                    "word_is_final": True,
                }
                for (shown, plain), (start, stop) in zip(pairs, spans, strict=True)
            ],
            "utterance": text,
        }
        for formatted in variants
    ]
