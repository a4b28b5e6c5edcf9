"""Helpers for showing PII findings without showing the values (`curate pii scan`)."""

from __future__ import annotations


def mask(value: str) -> str:
    """A preview that never shows the value: its first two characters and its length."""
    shown = value[:2] if len(value) > 6 else ""
    return f"{shown}****({len(value)})"


def line_number(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1
