"""Passwords out of every URL that is printed, logged or stored."""

from __future__ import annotations

import re

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*):(?P<password>[^@\s]*)@")
# libpq and SQLAlchemy also take the password as a query parameter (`?password=…`).
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|sslpassword|token|secret)=)"
                           r"[^&#\s]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db`` and ``…?password=secret``
    → ``…?password=***``, for anything printed, logged or stored."""
    masked = _PASSWORD.sub(lambda m: f"{m['head']}:***@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", masked)
