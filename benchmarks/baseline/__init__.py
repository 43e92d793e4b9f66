"""BASELINE — NOT ARBTUI. The widely copied tutorial design arbtui replaces.

Reproduced faithfully so every arbtui figure has it beside it, measured on the
same broker and the same load in the same run. Do not "fix" it: its costs are
the point (one awaited broker round trip per message, JSON dicts, a full scan
of every symbol per message). Adaptations forced by current libraries, and the
measurement hooks, are listed in docs/benchmarks.md and marked ADAPTATION/HOOK here.
"""
