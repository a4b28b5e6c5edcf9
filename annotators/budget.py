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

    A run resumed after a crash or a rerun is the same run: `run_spent` is what its earlier
    attempts spent (the ledger's), so the run cap is never granted afresh.
    """

    def __init__(
        self, run_cap: float, dataset_cap: float, dataset_spent: float = 0.0,
        run_spent: float = 0.0,
    ) -> None:  # fmt: skip
        self.run_cap = run_cap
        self.dataset_cap = dataset_cap
        self.dataset_spent_before = dataset_spent
        self.run_spent_before = run_spent
        self.spent = 0.0
        self.reserved = 0.0
        self._settled = asyncio.Condition()

    @property
    def left(self) -> float:
        """What may still be spent, counting what is reserved."""
        return min(self._run_left, self._dataset_left) - self.spent - self.reserved

    @property
    def _run_left(self) -> float:
        return self.run_cap - self.run_spent_before

    @property
    def _dataset_left(self) -> float:
        return self.dataset_cap - self.dataset_spent_before

    def _fits_when_idle(self, amount: float) -> bool:
        return amount <= self.left + self.reserved

    def _refusal(self, amount: float) -> OverBudget:
        if self._run_left <= self._dataset_left:
            cap = f"budget_usd {self.run_cap:g}, {self.run_spent_before + self.spent:.6f} spent"
            if self.run_spent_before:
                cap += " with the earlier attempts of this run"
        else:
            cap = (f"dataset_budget_usd {self.dataset_cap:g}, "
                   f"{self.dataset_spent_before + self.spent:.6f} spent")  # fmt: skip
        return OverBudget(
            f"a request that may cost {amount:.6f} does not fit in what is left "
            f"({max(self.left + self.reserved, 0):.6f} of {cap})"
        )

    async def reserve(self, amount: float) -> None:
        """Hold `amount` for one request, waiting for in-flight ones if needed."""
        async with self._settled:
            while amount > self.left:
                if not self._fits_when_idle(amount):
                    raise self._refusal(amount)
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
