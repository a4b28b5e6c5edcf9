"""Invoices: line items, tax, totals and a text layout.

Maintainer: Maria Schneider <maria.schneider@acme-billing.example.com>, +1 (415) 555-0137
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True)
class InvoiceLine:
    """One billable line: a description, a quantity and a unit price."""

    description: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Invoice:
    """An invoice for one customer, with a tax rate applied to the subtotal."""

    number: str
    customer: str
    tax_rate: Decimal = Decimal("0.00")
    items: list[InvoiceLine] = field(default_factory=list)

    def add(self, description: str, quantity: int, unit_price: str) -> None:
        """Append a line item; prices are given as strings to avoid float rounding."""
        if quantity <= 0:
            raise ValueError(f"quantity must be positive, got {quantity}")
        self.items.append(InvoiceLine(description, quantity, Decimal(unit_price)))

    @property
    def subtotal(self) -> Decimal:
        return sum((item.amount for item in self.items), Decimal("0.00"))

    @property
    def tax(self) -> Decimal:
        return (self.subtotal * self.tax_rate).quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax


def format_invoice(invoice: Invoice, columns: int = 48) -> str:
    """Render an invoice as fixed-columns text, one line per item, totals at the bottom."""
    lines = [f"INVOICE {invoice.number}".center(columns), f"Bill to: {invoice.customer}", ""]
    for item in invoice.items:
        left = f"{item.quantity} x {item.description}"
        lines.append(f"{left:<{columns - 12}}{item.amount:>12}")
    lines.append("-" * columns)
    for label, value in (("Subtotal", invoice.subtotal), ("Tax", invoice.tax),
                         ("Total", invoice.total)):
        lines.append(f"{label:<{columns - 12}}{value:>12}")
    return "\n".join(lines)
