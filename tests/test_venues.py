"""The venue registry (``arbtui.venues``) is the one place a venue is declared:
every other per-venue table is derived from it, and reading it imports nothing
of the backend, the simulator or Textual."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from arbtui import config, symbols, venues
from arbtui.backend import recording
from arbtui.backend.feeds import available, feed_class
from arbtui.backend.feeds.base import VenueFeed
from arbtui.model import VENUES

ROOT = Path(__file__).resolve().parents[1]
NAMES = venues.names()


def test_model_venues_are_the_registry_in_order():
    assert VENUES == NAMES == tuple(s.name for s in venues.REGISTRY)
    assert len(set(NAMES)) == len(NAMES)
    assert available() == list(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_adapter_and_simulator_derive_from_the_entry(name):
    spec = venues.get(name)
    cls = feed_class(name)
    assert issubclass(cls, VenueFeed) and cls is spec.adapter_class()
    assert (cls.venue, cls.default_url, cls.default_rest, cls.instruments_path) == (
        spec.name, spec.ws_url, spec.rest_url, spec.instruments_path)
    assert cls.STATIC_SYMBOLS == dict(spec.static_symbols)
    from arbtui.backend.sim.server import SimVenue, venue_classes

    sim = venue_classes()[name]
    assert issubclass(sim, SimVenue) and sim.venue == name and sim is spec.simulator_class()
    for s in spec.test_symbols:
        # The simulator composes the spelling the offline table lists.
        assert symbols.venue_symbol(name, s) == spec.static_symbols[s]


@pytest.mark.parametrize("name", NAMES)
def test_recording_exchange_ids_round_trip(name):
    spec = venues.get(name)
    assert recording.exchange_of_venue(name) == spec.exchange
    for x in (spec.exchange, *spec.exchange_aliases):
        assert recording.venue_of_exchange(x) == name
        assert recording.venue_of_exchange(x.lower()) == name
    assert recording.venue_of_exchange("BINANCE_DELIVERY") is None  # coin-M: not spoken


def test_unknown_venue_names_the_known_ones():
    with pytest.raises(KeyError, match="known: binance, coinbase"):
        venues.get("ftx")


def test_config_fees_default_from_the_registry():
    # config.toml states every fee (the operator's copy, with its source); it must
    # agree with the registry, and a table without the key gets the registry value.
    raw = tomllib.loads((ROOT / "config.toml").read_text())
    for name in NAMES:
        assert raw["venues"][name]["taker_fee_bps"] == venues.get(name).taker_fee_bps, name
    cfg = config.validate({"venues": {"coinbase": {"symbols": ["BTC-USD"]},
                                      "kraken": {"taker_fee_bps": 7.0}}})
    assert cfg.venues["coinbase"].taker_fee_bps == venues.get("coinbase").taker_fee_bps == 120.0
    assert cfg.venues["kraken"].taker_fee_bps == 7.0


def test_registry_import_is_core_only():
    code = ("import sys, arbtui.venues, arbtui.model, arbtui.symbols\n"
            "bad = [m for m in sys.modules if m.startswith(('arbtui.backend', 'textual'))]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_templates_stay_valid_and_unregistered():
    # The seventh venue's skeletons import cleanly (they are copied, not run) and
    # are no venue of their own.
    from arbtui.backend.feeds._template import TemplateFeed, TemplateSync
    from arbtui.backend.feeds.sync import BookSync
    from arbtui.backend.sim._template import Sim

    assert issubclass(TemplateSync, BookSync) and TemplateFeed.sync_state is TemplateSync
    assert "template" not in NAMES and Sim.venue == "template"
    feed = TemplateFeed(["BTC-USDT"], lambda q: None)
    assert isinstance(feed.books["BTC-USDT"].sync, TemplateSync)


def _anchors(md: str) -> set[str]:
    import re

    out = set()
    for line in md.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return out


def test_protocols_doc_covers_every_venue_and_every_pointer_resolves():
    import re

    doc = (ROOT / "docs" / "protocols.md").read_text()
    anchors = _anchors(doc)
    for name in NAMES:
        assert name in anchors, f"docs/protocols.md has no section for {name}"
    pointers = []
    for path in [*(ROOT / "arbtui").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        text = path.read_text()
        pointers += [(path.name, a) for a in re.findall(r"docs/protocols\.md#([a-z0-9-]+)", text)]
        if path.parts[-2] in ("feeds", "sim") or path.name == "book.py" or \
                path.name.startswith(("test_feed_", "test_conformance")):
            assert "PROTOCOLS" not in text, path  # the repo's own docs, not an absent file
    assert pointers
    for name, a in pointers:
        assert a in anchors, f"{name}: docs/protocols.md#{a} is no heading"


def test_detector_quote_aliases_come_from_the_registry():
    from arbtui.backend.detector import QUOTE_ALIASES

    assert QUOTE_ALIASES == {("coinbase", "USDC"): "USD"}
