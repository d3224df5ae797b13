"""Benchmarks: `python -m bench.dashboard` (the dashboard over big logs), `python -m bench.load` (load)."""
