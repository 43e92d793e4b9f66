"""arbtui's benchmark suite: ``python -m benchmarks [--quick] [--only NAME]``.

Results are medians and spreads of repeated runs; arbtui and the tutorial
baseline (``benchmarks/baseline``) are measured side by side in the same run.
Recorded runs live in benchmarks/results/ (one file each), the latest figures in
BENCHMARKS.md, and how to read them in docs/benchmarks.md.
"""
