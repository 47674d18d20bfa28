"""carebot's benchmarks: each module runs with `python -m bench.NAME --json` and prints JSON."""
