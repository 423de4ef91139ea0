"""Smoke test of the benchmark harness (imgorigin alone, a few seconds)."""
