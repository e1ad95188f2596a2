"""Helpers that start real servers for tests and benchmarks (shipped so both can use them)."""
