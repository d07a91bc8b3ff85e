"""Paying for speech only: the voice gate, admission, the ledger and its store."""
