"""When to reconnect: the close-code table and full-jitter exponential backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

from concierge_client.errors import TERMINAL_CODES


def should_retry(code: int | None) -> bool:
    """Whether a socket that ended with ``code`` may be reopened on the client's own initiative.

    Not after 4002, 4003, 4005, 4006, 4007, 4008 or 4010 (the request itself was wrong, or an
    operator said no); after anything else (4000, 4009, 4011, 1001, 1006, no close frame at all)
    yes. The client's own close never leads here.
    """
    return code not in TERMINAL_CODES


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits a uniform time in [0, min(cap, base * 2**n)]."""

    base: float = 0.5
    cap: float = 20.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 62))
        return (rng or random).uniform(0, ceiling)
