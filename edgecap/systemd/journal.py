"""Logging: the journal with structured fields under systemd, plain lines on stderr
otherwise; secrets redacted defensively on every path.

Structured fields are passed by callers as `extra={"EDGECAP_STATE": ..., "SESSION_ID": ...,
"ERROR_CLASS": ...}`; the journal handler sends upper-case extras as journal fields.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping

_SECRET_PATTERNS = (
    re.compile(r"(?i)(token=)[^&\s'\"]+"),
    re.compile(r"(?i)(authorization:\s*(?:bearer\s+)?)\S+"),
    re.compile(r"(?i)(\"token\"\s*:\s*\")[^\"]+"),
)
SYSLOG_IDENTIFIER = "edgecap"


class RedactSecrets(logging.Filter):
    """Replaces token-like values in every record (defence in depth: code never logs them)."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern in _SECRET_PATTERNS:
            redacted = pattern.sub(r"\1***", redacted)
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def journal_wanted(target: str, environ: Mapping[str, str], stderr_fd: int = 2) -> bool:
    """`auto`: use the journal when systemd connected stderr to it ($JOURNAL_STREAM)."""
    if target != "auto":
        return target == "journal"
    stream = environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(stderr_fd)
    except OSError:
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler
    except ImportError:  # pragma: no cover - systemd-python is a dependency on Linux
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
    return handler


def setup_logging(
    level: str = "info",
    secrets: tuple[str, ...] = (),
    target: str = "auto",
    environ: Mapping[str, str] | None = None,
) -> str:
    """Configure the root logger; returns "journal" or "stderr"."""
    env = os.environ if environ is None else environ
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _journal_handler() if journal_wanted(target, env) else None
    where = "journal"
    if handler is None:
        where = "stderr"
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root.addHandler(handler)
    set_level(level)
    return where


def set_level(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Library debug output includes request lines (with the token in the URL) and frames.
    for noisy in ("websockets", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def update_secrets(secrets: tuple[str, ...]) -> None:
    """After a reload: redact the new secrets too (the old ones stay redacted)."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactSecrets):
                f.secrets = tuple(dict.fromkeys((*f.secrets, *(s for s in secrets if len(s) >= 4))))
