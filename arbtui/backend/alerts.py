"""Webhook alerts: rules over the bus's events -> limited, de-duplicated alerts -> HTTP POSTs.

Three parts, each testable alone:

- ``Alerter`` holds the rules (``[alerts]``). It is fed the events the alerts
  role reads off the bus (opportunity events, book states, fills) plus a
  periodic ``tick`` for the conditions that need time to pass (a venue not
  live for N s, the bus down for N s), and returns the alerts to send. Every
  time it reads comes from the caller's clock (the engine's), so a rule
  behaves the same on live and virtual time.
- ``Limiter`` decides what is sent: per rule+subject a cooldown (one BTC-USD
  kraken>gemini alert per ``cooldown_s``, not one per window that reopens
  every second), and per rule a token bucket (``burst`` at once, refilled at
  ``per_minute``) so a storm of distinct subjects cannot flood a channel
  either. What it holds back is counted per rule, and the next alert of that
  rule says how many were held back since the previous one.
- ``Webhook`` delivers to one endpoint on its own task: a bounded queue (the
  oldest alert is dropped when full, counted), one POST at a time with a
  timeout, bounded retries with doubling backoff (honouring Retry-After), and
  a health record (ok / failing, last error) the status line and header show.
  The detector never waits for it: the role only appends to the queue.

Condition rules (venue down, bus down, PnL limits) are edge-triggered: one
"firing" alert when the condition has held long enough, one "resolved" alert
when it clears, and nothing in between. A resolved alert is sent only for a
firing one that was sent, and is never rate limited (it is bounded by them).

The delivery timers (HTTP timeout, backoff) run on the process clock on
purpose: they are about a remote server, not about market time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from arbtui.backend.clock import LIVE, Clock
from arbtui.config import AlertsConfig, resolve_secret
from arbtui.model import BookState, BookStatus, Fill, OppEvent, Opportunity

log = logging.getLogger("arbtui.alerts")

#: Every rule, by the name alerts carry and counters are kept under.
RULES = ("opportunity", "venue_down", "bus_down", "pnl_below", "pnl_above", "one_leg")
#: The longest a retry waits, whatever the backoff or a Retry-After asks.
MAX_BACKOFF_S = 60.0
#: Bus states that are not an outage: up, or being stopped on purpose.
_BUS_OK = ("up", "stopped", "")
#: Windows remembered as already alerted (one alert per window at most).
_WINDOWS_KEPT = 10_000
NS = 1_000_000_000


@dataclass(frozen=True)
class Alert:
    rule: str
    subject: str  # what it is about: "BTC-USD kraken>gemini", "okx", "USD"
    text: str  # one line for a human
    ts_ns: int
    state: str = "firing"  # firing | resolved
    severity: str = "info"  # info | warning | critical
    data: Mapping[str, Any] = field(default_factory=dict)
    #: alerts of this rule held back (cooldown or rate limit) since its previous one was sent
    suppressed: int = 0


# ---------------------------------------------------------------------------- limits


class Limiter:
    """Cooldown per rule+subject, token bucket per rule; counts what it holds back."""

    def __init__(self, cooldown_s: float, burst: int, per_minute: float) -> None:
        self.cooldown_ns = int(cooldown_s * NS)
        self.burst = float(burst)
        self.rate_per_ns = per_minute / 60.0 / NS
        self._last: dict[tuple[str, str], int] = {}
        self._bucket: dict[str, tuple[float, int]] = {}
        self.deduplicated: dict[str, int] = {}
        self.rate_limited: dict[str, int] = {}
        self._held: dict[str, int] = {}

    def admit(self, rule: str, subject: str, now: int) -> int | None:
        """None if held back; else the number held back since this rule's previous send."""
        key = (rule, subject)
        last = self._last.get(key)
        if last is not None and now - last < self.cooldown_ns:
            self.deduplicated[rule] = self.deduplicated.get(rule, 0) + 1
            self._held[rule] = self._held.get(rule, 0) + 1
            return None
        tokens, at = self._bucket.get(rule, (self.burst, now))
        tokens = min(self.burst, tokens + max(0, now - at) * self.rate_per_ns)
        if tokens < 1.0:
            self._bucket[rule] = (tokens, now)
            self.rate_limited[rule] = self.rate_limited.get(rule, 0) + 1
            self._held[rule] = self._held.get(rule, 0) + 1
            return None
        self._bucket[rule] = (tokens - 1.0, now)
        self._last[key] = now
        if len(self._last) > 4096:  # subjects come and go (pairs, windows): forget expired ones
            self._last = {k: t for k, t in self._last.items() if now - t < self.cooldown_ns}
        return self._held.pop(rule, 0)


# ---------------------------------------------------------------------------- rules


@dataclass
class _Cond:
    since: int | None = None
    raised: bool = False  # reported this episode (sent or held back)
    sent: bool = False  # its firing alert went out: a resolved one follows


def _dur(ns: int) -> str:
    s = ns / NS
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}min"


def opportunity_data(o: Opportunity) -> dict[str, Any]:
    """The fields of an opportunity an alert carries (its walked books stay out)."""
    return {
        "id": o.id, "event": o.event.value, "kind": o.kind, "symbol": o.symbol,
        "sell_symbol": o.sell_symbol or o.symbol, "buy_venue": o.buy_venue,
        "sell_venue": o.sell_venue, "buy_price": o.buy_price, "sell_price": o.sell_price,
        "net_bps": o.net_bps, "gross_bps": o.gross_bps, "size": o.size, "profit": o.profit,
        "quote_ccy": o.quote_ccy, "p_catch": o.p_catch, "ev": o.ev, "ev_bps": o.ev_bps,
        "lifetime_ms": o.lifetime_ms, "opened_ts_ns": o.opened_ts_ns, "ts_ns": o.ts_ns,
    }


class Alerter:
    """The ``[alerts]`` rules: events in, alerts to send out (see the module docstring)."""

    def __init__(self, cfg: AlertsConfig) -> None:
        self.cfg = cfg
        self.limiter = Limiter(cfg.cooldown_s, cfg.burst, cfg.per_minute)
        c = cfg
        self.opportunity_on = any(x is not None for x in (
            c.opportunity_min_net_bps, c.opportunity_min_ev, c.opportunity_min_p_catch))
        #: (venue, symbol) -> (state, since_ns, reason) of books not LIVE
        self._bad_books: dict[tuple[str, str], tuple[str, int, str]] = {}
        self._conds: dict[tuple[str, str], _Cond] = {}
        #: venues the operator switched off: their feed stops and its books go STALE,
        #: which is no outage
        self.disabled_venues: set[str] = set()
        self._windows: OrderedDict[str, None] = OrderedDict()
        #: realized PnL per currency, summed from the fills seen
        self.pnl: dict[str, float] = {}
        #: rule -> alerts raised (before the limiter), and queued for delivery (after it)
        self.raised: dict[str, int] = {}
        self.queued: dict[str, int] = {}

    def active_rules(self) -> list[str]:
        c = self.cfg
        on = {"opportunity": self.opportunity_on, "venue_down": c.venue_down_s is not None,
              "bus_down": c.bus_down_s is not None, "pnl_below": c.pnl_below is not None,
              "pnl_above": c.pnl_above is not None, "one_leg": c.one_leg}
        return [r for r in RULES if on[r]]

    # ------------------------------------------------------------------ plumbing

    def _admit(self, a: Alert, now: int) -> list[Alert]:
        self.raised[a.rule] = self.raised.get(a.rule, 0) + 1
        held = self.limiter.admit(a.rule, a.subject, now)
        if held is None:
            return []
        self.queued[a.rule] = self.queued.get(a.rule, 0) + 1
        if held:
            a = Alert(a.rule, a.subject, a.text, a.ts_ns, a.state, a.severity, a.data, held)
        return [a]

    def _condition(self, rule: str, subject: str, active: bool, since: int, hold_s: float,
                   now: int, severity: str, firing: Callable[[int], str],
                   resolved: Callable[[int], str], data: Mapping[str, Any]) -> list[Alert]:
        """Edge-triggered: ``firing(duration)`` once ``active`` has held ``hold_s``;
        ``resolved(duration)`` when it clears, if the firing alert was sent."""
        key = (rule, subject)
        c = self._conds.get(key)
        if active:
            if c is None:
                c = self._conds[key] = _Cond(since=min(since, now))
            assert c.since is not None
            if c.raised or now - c.since < hold_s * NS:
                return []
            c.raised = True
            out = self._admit(Alert(rule, subject, firing(now - c.since), now,
                                    severity=severity, data=data), now)
            c.sent = bool(out)
            return out
        if c is None:
            return []
        del self._conds[key]
        if not c.sent:
            return []
        assert c.since is not None
        self.queued[rule] = self.queued.get(rule, 0) + 1
        return [Alert(rule, subject, resolved(now - c.since), now, state="resolved",
                      severity="info", data=data)]

    # ------------------------------------------------------------------ inputs

    def on_opportunity(self, o: Opportunity, now: int) -> list[Alert]:
        """An opportunity OPENED/UPDATED that meets every threshold set (net, EV,
        p_catch): one alert per window at most. A threshold on ``ev``/``p_catch`` skips
        events not estimated yet (None); a suspect edge never alerts."""
        c = self.cfg
        if not self.opportunity_on or o.event is OppEvent.CLOSED or o.suspect \
                or o.id in self._windows:
            return []
        if c.opportunity_min_net_bps is not None and o.net_bps < c.opportunity_min_net_bps:
            return []
        if c.opportunity_min_ev is not None and (o.ev is None or o.ev < c.opportunity_min_ev):
            return []
        if c.opportunity_min_p_catch is not None and (
                o.p_catch is None or o.p_catch < c.opportunity_min_p_catch):
            return []
        self._windows[o.id] = None
        if len(self._windows) > _WINDOWS_KEPT:
            self._windows.popitem(last=False)
        sell = o.sell_symbol if o.sell_symbol and o.sell_symbol != o.symbol else ""
        subject = f"{o.symbol} {o.buy_venue}>{o.sell_venue}" + (f" {sell}" if sell else "")
        ccy = o.quote_ccy or o.symbol.partition("-")[2]
        text = (f"{o.kind} {o.symbol}: buy {o.buy_venue} {o.buy_price:g}, sell {o.sell_venue}"
                f"{' ' + sell if sell else ''} {o.sell_price:g}: NET {o.net_bps:+.1f} bps, "
                f"size {o.size:.6g}, profit {o.profit:.2f} {ccy}")
        if o.p_catch is not None:
            text += f", p_catch {o.p_catch:.2f}"
        if o.ev is not None:
            text += f", EV {o.ev:.2f} {ccy}"
        return self._admit(Alert("opportunity", subject, text, now,
                                 data=opportunity_data(o)), now)

    def on_status(self, st: BookStatus, now: int) -> list[Alert]:
        """A book's state: a book not LIVE (SYNCING, STALE, RESYNC) counts against its
        venue from when it left LIVE; DISABLED is the operator's choice, not an outage."""
        k = (st.venue, st.symbol)
        if st.state in (BookState.LIVE, BookState.DISABLED):
            self._bad_books.pop(k, None)
        else:
            prev = self._bad_books.get(k)
            # the feed stamps when the state began (a late reader learns the outage's age)
            since = prev[1] if prev else (min(st.ts_ns, now) if st.ts_ns > 0 else now)
            self._bad_books[k] = (st.state.value, since, st.reason)
        return self._venue(st.venue, now)

    def set_venue_enabled(self, venue: str, enabled: bool, now: int) -> None:
        """The operator's switch: a venue switched off raises nothing (and an open
        episode is dropped without a resolve); switched on, its books count from now."""
        if enabled:
            self.disabled_venues.discard(venue)
            for k, (st, _, r) in list(self._bad_books.items()):
                if k[0] == venue:
                    self._bad_books[k] = (st, now, r)
        else:
            self.disabled_venues.add(venue)
            self._conds.pop(("venue_down", venue), None)

    def _venue(self, venue: str, now: int) -> list[Alert]:
        if self.cfg.venue_down_s is None or venue in self.disabled_venues:
            return []
        bad = {sym: b for (v, sym), b in self._bad_books.items() if v == venue}
        since = min((b[1] for b in bad.values()), default=now)
        detail = ", ".join(f"{sym} {s}" + (f" ({r})" if r else "")
                           for sym, (s, _, r) in sorted(bad.items()))
        data = {"venue": venue, "books": {sym: {"state": s, "reason": r}
                                          for sym, (s, _, r) in bad.items()}}
        return self._condition(
            "venue_down", venue, bool(bad), since, self.cfg.venue_down_s, now, "warning",
            lambda d: f"{venue} not live for {_dur(d)}: {detail}",
            lambda d: f"{venue} live again after {_dur(d)}", data)

    def on_fill(self, f: Fill, now: int) -> list[Alert]:
        """PnL limits on the realized PnL summed from fills (per currency), and trades
        that left one leg (or part of one) unfilled."""
        out: list[Alert] = []
        c = self.cfg
        if c.one_leg and f.kind == "leg" and f.reason.startswith(("one-legged", "partial")):
            out += self._admit(Alert(
                "one_leg", f.symbol, f"{f.symbol} trade {f.opp_id} left inventory: {f.reason}",
                now, severity="warning",
                data={"opp_id": f.opp_id, "venue": f.venue, "symbol": f.symbol,
                      "reason": f.reason}), now)
        if f.pnl_ccy and f.pnl:
            ccy = f.pnl_ccy
            total = self.pnl[ccy] = self.pnl.get(ccy, 0.0) + f.pnl
            data = {"ccy": ccy, "pnl": total}
            if c.pnl_below is not None:
                lim = c.pnl_below
                out += self._condition(
                    "pnl_below", ccy, total < lim, now, 0.0, now, "critical",
                    lambda _d: f"realized PnL {total:.2f} {ccy} is below the loss limit {lim:g}",
                    lambda _d: f"realized PnL {total:.2f} {ccy} back above the loss limit {lim:g}",
                    data)
            if c.pnl_above is not None:
                tgt = c.pnl_above
                out += self._condition(
                    "pnl_above", ccy, total > tgt, now, 0.0, now, "info",
                    lambda _d: f"realized PnL {total:.2f} {ccy} is above the target {tgt:g}",
                    lambda _d: f"realized PnL {total:.2f} {ccy} back below the target {tgt:g}",
                    data)
        return out

    def tick(self, now: int, bus_state: str = "up", bus_kind: str = "", bus_reason: str = "") \
            -> list[Alert]:
        """The conditions that need time to pass: venues and the bus."""
        out: list[Alert] = []
        if self.cfg.venue_down_s is not None:
            venues = {v for v, _ in self._bad_books} | {s for r, s in self._conds
                                                       if r == "venue_down"}
            for v in sorted(venues):
                out += self._venue(v, now)
        if self.cfg.bus_down_s is not None:
            down = bus_state not in _BUS_OK
            what = f"bus {bus_kind}".rstrip()
            out += self._condition(
                "bus_down", bus_kind or "bus", down, now, self.cfg.bus_down_s, now, "critical",
                lambda d: f"{what} {bus_state} for {_dur(d)}" + (f": {bus_reason}" if bus_reason else ""),
                lambda d: f"{what} up again after {_dur(d)}",
                {"state": bus_state, "reason": bus_reason})
        return out

    def stats(self) -> dict[str, Any]:
        lim = self.limiter
        return {"rules": self.active_rules(), "raised": dict(self.raised), "queued": dict(self.queued),
                "deduplicated": dict(lim.deduplicated), "rate_limited": dict(lim.rate_limited),
                "suppressed": sum(lim.deduplicated.values()) + sum(lim.rate_limited.values())}


# ---------------------------------------------------------------------------- formats


def payload(a: Alert, fmt: str, chat_id: str = "") -> dict[str, Any]:
    """The JSON body for ``fmt``: the generic record, Slack's ``{"text"}`` or a Telegram
    ``sendMessage`` (chat_id + text)."""
    mark = {"firing": "", "resolved": "resolved: "}.get(a.state, "")
    more = f" (+{a.suppressed} more held back)" if a.suppressed else ""
    text = f"arbtui {a.rule}: {mark}{a.text}{more}"
    if fmt == "slack":
        return {"text": text}
    if fmt == "telegram":
        # sendMessage takes at most 4096 characters; plain text (no parse_mode) so a
        # venue reason with * or _ cannot break the message.
        return {"chat_id": chat_id, "text": text[:4096], "disable_web_page_preview": True}
    ts = datetime.fromtimestamp(a.ts_ns / NS, UTC).isoformat(timespec="milliseconds")
    return {"source": "arbtui", "rule": a.rule, "subject": a.subject, "state": a.state,
            "severity": a.severity, "text": a.text, "ts": ts, "ts_ns": a.ts_ns,
            "suppressed": a.suppressed, "data": dict(a.data)}


# ---------------------------------------------------------------------------- delivery

#: (url, body, timeout_s) -> (HTTP status, start of the body, Retry-After seconds or None)
Post = Callable[[str, bytes, float], Awaitable[tuple[int, str, float | None]]]


def target_label(url: str) -> str:
    """scheme://host[:port] only: a webhook's path is its secret (Slack) or holds a bot
    token (Telegram), and must not reach a status line, a header or a log."""
    if url.startswith("env:"):
        return url
    p = urllib.parse.urlsplit(url)
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}"


class HttpPoster:
    """POSTs JSON with aiohttp: one pooled session per process, proxies from the
    environment (``trust_env``), a total timeout per attempt."""

    def __init__(self) -> None:
        self._session: Any = None

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, str, float | None]:
        import aiohttp  # only a process with webhooks configured loads it

        if self._session is None:
            self._session = aiohttp.ClientSession(
                trust_env=True, headers={"User-Agent": "arbtui",
                                         "Content-Type": "application/json"})
        async with self._session.post(url, data=body,
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            text = (await r.content.read(512)).decode("utf-8", "replace")
            return r.status, text, _retry_after(r.headers.get("Retry-After"), text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(header: str | None, body: str) -> float | None:
    """Seconds a 429 asks us to wait: Slack's Retry-After header, or Telegram's
    ``parameters.retry_after`` in the JSON body."""
    try:
        if header:
            return float(header)
        p = json.loads(body).get("parameters") if body.startswith("{") else None
        return float(p["retry_after"]) if isinstance(p, dict) and "retry_after" in p else None
    except (ValueError, TypeError, KeyError):
        return None


class Webhook:
    """One endpoint: a bounded queue drained by ``run`` (its own task), with bounded retry."""

    def __init__(self, url: str, cfg: AlertsConfig, post: Post, clock: Clock = LIVE) -> None:
        self.spec = url
        self.url = resolve_secret(url)
        self.label = target_label(url)
        self.cfg = cfg
        self.post = post
        self.clock = clock  # the process clock: these timers are about the server
        self.queue: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.sent = 0
        self.failed = 0  # alerts given up on after every attempt
        self.retries = 0
        self.dropped = 0  # queue overflow: the oldest waiting alert dropped
        self.attempts = 0
        self.consecutive_failures = 0
        self.last_error = "" if self.url else f"{url} is not set"
        self.busy = False

    def put(self, body: bytes) -> None:
        if len(self.queue) >= self.cfg.queue_size:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(body)
        self._ready.set()

    async def run(self) -> None:
        while True:
            while not self.queue:
                self._ready.clear()
                await self._ready.wait()
            body = self.queue.popleft()
            self.busy = True
            try:
                await self._deliver(body)
            finally:
                self.busy = False

    async def _deliver(self, body: bytes) -> None:
        cfg = self.cfg
        delay = cfg.backoff_s
        wait: float | None = None
        for attempt in range(cfg.retries + 1):
            if attempt:
                self.retries += 1
                await self.clock.sleep(min(MAX_BACKOFF_S, wait if wait is not None else delay))
                delay = min(MAX_BACKOFF_S, delay * 2)
            wait = None
            if not self.url:
                break  # env:NAME not set: nothing to try
            self.attempts += 1
            try:
                status, text, wait = await self.post(self.url, body, cfg.timeout_s)
            except TimeoutError:
                err = f"timed out after {cfg.timeout_s:g}s"
            except Exception as e:  # noqa: BLE001 - any transport failure is the endpoint's
                # aiohttp's messages name the host ("Cannot connect to host ..."); a
                # message that quotes the URL must not leak its path (the secret part).
                err = str(e).replace(self.url, self.label) or type(e).__name__
            else:
                if 200 <= status < 300:
                    self.sent += 1
                    if self.consecutive_failures:
                        log.info("webhook %s ok again", self.label)
                    self.consecutive_failures = 0
                    self.last_error = ""
                    return
                err = f"HTTP {status} {' '.join(text.split())[:80]}".rstrip()
                if 400 <= status < 500 and status not in (408, 429):
                    self._failed(err)  # the request itself is wrong: retrying cannot help
                    break
            self._failed(err)
        self.failed += 1

    def _failed(self, err: str) -> None:
        # Logged when the endpoint turns bad, not per alert: a dead webhook under a
        # storm of alerts must not become a storm of log lines (the counts say the rest).
        if not self.consecutive_failures:
            log.warning("webhook %s failing: %s", self.label, err)
        self.consecutive_failures += 1
        self.last_error = err

    def state(self) -> dict[str, Any]:
        failing = self.consecutive_failures > 0 or not self.url
        return {"target": self.label,
                "state": "failing" if failing else ("ok" if self.sent else "idle"),
                "sent": self.sent, "failed": self.failed, "retries": self.retries,
                "dropped": self.dropped, "queued": len(self.queue) + self.busy,
                "consecutive_failures": self.consecutive_failures,
                "last_error": self.last_error}


def encode(a: Alert, cfg: AlertsConfig) -> bytes:
    return json.dumps(payload(a, cfg.format, cfg.telegram_chat_id),
                      separators=(",", ":"), default=str).encode()


__all__ = ["RULES", "Alert", "Alerter", "HttpPoster", "Limiter", "Webhook", "encode",
           "opportunity_data", "payload", "target_label"]
