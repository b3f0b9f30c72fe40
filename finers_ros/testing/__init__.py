"""Tiny models with random weights, built in code (no download), for tests and benchmarks."""
