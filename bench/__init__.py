"""edgecap's benchmark (`scripts/bench`): edgecap against the AssemblyAI SDK client and a
bare websockets floor, side by side, on the same audio and the same simulator.

Run it with `scripts/bench` (or `python -m bench` in a prepared virtualenv); the figures go
to stdout and to `docs/benchmarks.md`. Nothing here is part of the installed package.
"""
