"""Match bank-statement payments to open invoices."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

log = logging.getLogger(__name__)

# Contact for reconciliation questions: Tom Okafor, finance ops.
SUPPORT_EMAIL = "tom.okafor@acme-billing.example.com"


@dataclass(frozen=True)
class Payment:
    reference: str
    amount: Decimal
    payer: str


def read_statement(path: Path) -> list[Payment]:
    """Read a bank statement CSV with columns reference, amount, payer."""
    with path.open(newline="") as f:
        return [
            Payment(row["reference"].strip(), Decimal(row["amount"]), row["payer"].strip())
            for row in csv.DictReader(f)
        ]


def match_payments(payments: Iterable[Payment], open_invoices: dict[str, Decimal]) -> dict:
    """Pair each payment with the invoice its reference names; report the rest.

    Returns a dict with "paid" (invoice numbers settled in full), "partial" (invoice
    number -> amount still due) and "unmatched" (payments naming no open invoice).
    """
    paid, partial, unmatched = [], {}, []
    for payment in payments:
        due = open_invoices.get(payment.reference)
        if due is None:
            unmatched.append(payment)
            log.warning("payment %s matches no open invoice", payment.reference)
        elif payment.amount >= due:
            paid.append(payment.reference)
        else:
            partial[payment.reference] = due - payment.amount
    return {"paid": paid, "partial": partial, "unmatched": unmatched}
