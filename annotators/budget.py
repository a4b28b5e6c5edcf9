"""The hard cap: a request is sent only when its worst-case cost fits what is left."""

from __future__ import annotations

import asyncio


class OverBudget(Exception):
    """The next request could cross the cap; nothing more is sent."""


class Budget:
    """Spend and reservations against a per-run and a per-dataset cap.

    Every request reserves its worst case (its exact prompt tokens and `max_tokens` of
    completion) before it is sent and settles to its actual cost when it returns, so the
    caps hold with any number of requests in flight. A request that does not fit waits for
    in-flight ones to settle, and is refused only when it would not fit even with none.
    """

    def __init__(self, run_cap: float, dataset_cap: float, dataset_spent: float = 0.0) -> None:
        self.run_cap = run_cap
        self.dataset_cap = dataset_cap
        self.dataset_spent_before = dataset_spent
        self.spent = 0.0
        self.reserved = 0.0
        self._settled = asyncio.Condition()

    @property
    def left(self) -> float:
        """What may still be spent, counting what is reserved."""
        return min(
            self.run_cap - self.spent - self.reserved,
            self.dataset_cap - self.dataset_spent_before - self.spent - self.reserved,
        )

    def _fits_when_idle(self, amount: float) -> bool:
        return amount <= self.left + self.reserved

    async def reserve(self, amount: float) -> None:
        """Hold `amount` for one request, waiting for in-flight ones if needed."""
        async with self._settled:
            while amount > self.left:
                if not self._fits_when_idle(amount):
                    raise OverBudget(
                        f"a request that may cost {amount:.6f} does not fit in what is left "
                        f"({max(self.left + self.reserved, 0):.6f})"
                    )
                await self._settled.wait()
            self.reserved += amount

    def try_reserve(self, amount: float) -> bool:
        """Hold `amount` now if it fits, without waiting (batch jobs reserve up front)."""
        if amount > self.left:
            return False
        self.reserved += amount
        return True

    def hold(self, amount: float) -> None:
        """Count a reservation made by an earlier run (a batch job already submitted)."""
        self.reserved += amount

    async def settle(self, reserved: float, actual: float) -> None:
        """Release a reservation and count what the request really cost."""
        async with self._settled:
            self.reserved -= reserved
            self.spent += actual
            self._settled.notify_all()
