"""Record ids: short, URL-safe, time-ordered strings."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id"]

# A 48-bit millisecond timestamp followed by 72 random bits, written as 30 lower-case hex
# digits (fixed width, so string order is numeric order): ids sort by creation time, and
# ids made in the same millisecond by this process increase monotonically. This is the
# ULID/UUIDv7 idea; UUIDv7 is not in Python 3.11's uuid module and a dependency for these
# few lines is not worth it.
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0
_RAND_BITS = 72
_RAND_MAX = (1 << _RAND_BITS) - 1


def new_id() -> str:
    """A new 30-character id, e.g. ``"019ab3c4d5e6f7a8b9c0d1e2f3a4b5"``."""
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms and _last_rand < _RAND_MAX:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            ms = max(ms, _last_ms + (ms <= _last_ms))
            rand = int.from_bytes(os.urandom(9)) >> 1  # headroom for increments
        _last_ms, _last_rand = ms, rand
    return f"{(ms << _RAND_BITS) | rand:030x}"
