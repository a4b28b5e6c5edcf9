"""Requests and tokens per minute, as token buckets shared by every concurrent request, and
the clock that the runner and the limiter wait on."""

from __future__ import annotations

import asyncio
import time

# A bucket holds this many seconds of its rate, so a run may burst briefly after a pause
# but never sends a whole minute's allowance at once.
BURST_SECONDS = 10.0


class Clock:
    """Real time. Every wait of a run (rate limits, Retry-After, backoff, batch polls) goes
    through one, so a test can pass a subclass that records the waits instead of sleeping."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RateLimiter:
    """Waits until a request fits both the RPM and the TPM limit, and after a `Retry-After`
    pauses everyone, not just the request that was told to wait."""

    def __init__(self, rpm: int, tpm: int, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        self._rates = (rpm / 60.0, tpm / 60.0)
        self._capacity = tuple(max(rate * BURST_SECONDS, 1.0) for rate in self._rates)
        self._level = list(self._capacity)
        self._stamp = self._clock.monotonic()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed, self._stamp = now - self._stamp, now
        for i, rate in enumerate(self._rates):
            self._level[i] = min(self._capacity[i], self._level[i] + elapsed * rate)

    async def acquire(self, tokens: int) -> None:
        """Wait for one request of `tokens` (prompt + max completion) to be allowed."""
        # a request bigger than a bucket waits for a full bucket, not forever
        need = (1.0, min(float(tokens), self._capacity[1]))
        async with self._lock:  # first come, first served
            while True:
                self._refill()
                wait = self._paused_until - self._clock.monotonic()
                for level, amount, rate in zip(self._level, need, self._rates, strict=True):
                    wait = max(wait, (amount - level) / rate)
                if wait <= 0:
                    self._level = [
                        level - amount for level, amount in zip(self._level, need, strict=True)
                    ]
                    return
                await self._clock.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` (the server's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)
