"""Test doubles and builders shared by tests and benchmarks, kept out of the wheel."""
