"""Benchmarks, run on purpose: ``python -m benchmarks SUITE [--size ci|full] [--db …]``."""
