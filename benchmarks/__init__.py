"""hero-gym benchmark harness: statistics, comparisons, plots, and the speed benchmarks (run as scripts)."""
