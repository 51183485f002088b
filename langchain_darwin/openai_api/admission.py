"""Admission control: at most ``max_concurrent`` searches at once, at most ``queue`` more
waiting in order; past that a request is refused at once (429 with ``Retry-After``) instead of
waiting unboundedly. Everything runs on the server's event loop, so no locks are needed."""

from __future__ import annotations

import asyncio
import math
from collections import deque


class QueueFull(Exception):
    """Every slot is busy and the queue is full: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"busy; retry after {retry_after} s")
        self.retry_after = retry_after


class Admission:
    """Slots for searches, handed out first come, first served."""

    def __init__(self, max_concurrent: int, queue: int) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if queue < 0:
            raise ValueError(f"queue must be at least 0, got {queue}")
        self.max_concurrent = max_concurrent
        self.queue = queue
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._seconds = 0.0  # mean search seconds, for Retry-After
        self._searches = 0

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in self._waiters)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the mean search time times the searches
        ahead per slot (at least 1)."""
        ahead = (self.waiting + 1) / self.max_concurrent
        return max(1, math.ceil(self._seconds * ahead))

    async def acquire(self) -> None:
        """A slot, now or after the ones queued before; :class:`QueueFull` when none is left.
        Cancelling the wait leaves the queue (and hands on a slot granted meanwhile)."""
        if self.running < self.max_concurrent and not self.waiting:
            self.running += 1
            return
        if self.waiting >= self.queue:
            raise QueueFull(self.retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as it was cancelled: pass it on
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, seconds: float | None = None) -> None:
        """Give the slot back (to the next waiter, if any); ``seconds`` the search took."""
        if seconds is not None:
            self._searches += 1
            self._seconds += (seconds - self._seconds) / self._searches
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: running stays the same
                return
        self.running -= 1
