"""arbtui's benchmark suite: ``python -m benchmarks [--quick] [--only NAME]``.

Results are medians and spreads of repeated runs; arbtui and the tutorial
baseline (``benchmarks/baseline``) are measured side by side in the same run.
Recorded results and how to read them live in BENCHMARKS.md.
"""
