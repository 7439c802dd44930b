"""A run's budget: tokens a provider bills, or money; passing either stops the run cleanly."""

from __future__ import annotations

from dataclasses import dataclass

from agora.engine.turns import RunTotals


@dataclass(frozen=True, slots=True)
class Budget:
    tokens: int | None = None
    usd: float | None = None

    def exceeded(self, totals: RunTotals) -> str | None:
        """Why the run must stop now, or ``None`` while it is within its budget."""
        if self.tokens is not None and totals.billed_tokens >= self.tokens:
            return f"token budget reached: {totals.billed_tokens} of {self.tokens} tokens"
        if self.usd is not None and totals.cost_usd >= self.usd:
            return f"cost budget reached: ${totals.cost_usd:.4f} of ${self.usd:.4f}"
        return None
