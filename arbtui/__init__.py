"""arbtui: terminal console for cross-exchange crypto arbitrage."""

__version__ = "0.1.0"
