"""``arbtui replay``: play recordings back through the live adapters (dashboard or headless).

A thin forwarder for now: the glue still lives in ``backend/replay.py`` (``cli_main``) and
moves here with the replay package split.
"""

from __future__ import annotations

import argparse


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    from arbtui.backend.replay import cli_main as replay_main

    return replay_main(command, argv, args)
