"""Invoice generation and payment reconciliation."""

from billing.invoice import Invoice, LineItem, render_invoice

__all__ = ["Invoice", "LineItem", "render_invoice"]
