"""Benchmarks: each writes JSON to reports/ and prints a table (never timed assertions in tests)."""
