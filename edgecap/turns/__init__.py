"""Finalized turns: the published record and the audio timeline behind it."""
