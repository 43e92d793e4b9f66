"""The health facts: one computation for the headless ``status`` line and the dashboard header.

Issue 8 asks that both show the same facts. If each computed its own, they
would drift (one counting drops, the other not; one saying "kafka down", the
other "kafka retrying"), and an operator comparing a log with a screenshot
would be misled. So the facts are derived here, once, from an ``EngineState``;
``headless.status_record`` writes them, and the header renders
``health_fields`` of the same dict. No Textual or Rich here: the headless path
must not import the UI stack (tests/test_import_hygiene.py).
"""

from __future__ import annotations

import re
from typing import Any

from arbtui.fmt import fmt_money, fmt_ms, fmt_rate, fmt_uptime

# How many characters a free-text reason may take in the header: a Kafka error
# string can be hundreds of characters, the header is one line of 80.
REASON_W = 36
VENUES_W = 44  # the venues field ("LIVE 10/12 binance RECONNECTING ...")

# Field tones; the header maps them to colours, the status line does not need them.
OK, WARN, BAD, PLAIN = "ok", "warn", "bad", ""


def _state_name(s: Any) -> str:
    return str(getattr(s, "value", s) or "")


def mode_label(mode: str, extra: dict[str, Any]) -> str:
    """LIVE / DEMO / VIEW, or REPLAY ×speed (``max`` unpaced; ``done`` once finished)."""
    if mode != "REPLAY":
        return mode
    rp = extra.get("replay")
    if not isinstance(rp, dict):
        return mode
    speed = rp.get("speed")
    label = f"REPLAY ×{speed:g}" if isinstance(speed, (int, float)) else f"REPLAY {speed or ''}".strip()
    return label + (" done" if rp.get("finished") else "")


def pnl_of(extra: dict[str, Any]) -> tuple[float | None, str]:
    """Simulated realized PnL and its currency, when an executor reports one number."""
    ex = extra.get("executor")
    src = ex if isinstance(ex, dict) else extra
    v = src.get("pnl")
    if isinstance(v, (int, float)):
        return float(v), str(src.get("pnl_ccy") or "")
    return None, ""


def _bus_facts(bus: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    kafka = extra.get("kafka") if isinstance(extra.get("kafka"), dict) else {}
    kind = bus.get("kind") or ("kafka" if kafka else "?")
    out: dict[str, Any] = {"kind": kind, "state": bus.get("state") or kafka.get("state") or ""}
    if kind == "kafka":
        out["reason"] = kafka.get("reason") or bus.get("reason") or ""
        out["down_for_s"] = kafka.get("down_for_s", bus.get("down_for_s"))
        out["missing_permissions"] = list(kafka.get("missing_permissions")
                                          or bus.get("missing_permissions") or [])
    # Messages that never reached a consumer, by topic: shed by a full subscriber
    # inbox, or (Kafka) shed/failed by the producer, or LOST from its reliable
    # outbox. Quotes replaced by a newer one of the same venue+symbol are counted
    # apart as superseded: normal under load, never mixed with drops.
    by_topic: dict[str, int] = {}
    superseded = 0
    for name, s in (bus.get("subscriptions") or {}).items():
        superseded += int((s or {}).get("superseded") or 0)
        n = int((s or {}).get("dropped") or 0)
        if n:
            t = str(name).split("/", 1)[0]
            by_topic[t] = by_topic.get(t, 0) + n
    lost = {str(t): int(n) for t, n in (bus.get("lost") or {}).items() if n}
    for counts in (bus.get("dropped"), lost):
        if isinstance(counts, dict):
            for t, n in counts.items():
                if n:
                    by_topic[str(t)] = by_topic.get(str(t), 0) + int(n)
    sup = bus.get("superseded")
    if isinstance(sup, dict):
        superseded += sum(int(n or 0) for n in sup.values())
    out["superseded"] = superseded
    out["lost"] = lost
    out["drops"] = sum(by_topic.values())
    out["drops_by_topic"] = by_topic
    return out


_RETRY = re.compile(r"^reconnecting in ([0-9.]+s) \((\w+)")


def venue_word(s: Any) -> tuple[str, str]:
    """What a venue's state means to an operator, and why: (word, reason).

    A feed reports SYNCING while its socket is down and it never had a message (and
    STALE once it had some): both read as what they are, NOT CONNECTED (live mode
    without network: ``gaierror``, retrying) or RECONNECTING, never as "SYNCING",
    which means a connected feed waiting for its snapshot. CONNECTING is the first
    attempt. Otherwise the book state itself (LIVE, SYNCING, STALE, RESYNC, DISABLED).
    """
    state = _state_name(s.state)
    reason = str(getattr(s, "reason", "") or "")
    if state in ("SYNCING", "STALE") and not getattr(s, "connected", True):
        m = _RETRY.match(reason)
        if m:  # short enough for a venue panel's state line, the error class first
            reason = f"{m.group(2)}, retry {float(m.group(1)[:-1]):.0f}s"
        if getattr(s, "last_msg_ns", 0):
            return "RECONNECTING", reason
        if not getattr(s, "reconnects", 0) and reason in ("", "connecting"):
            return "CONNECTING", ""
        return "NOT CONNECTED", reason
    return state, reason


def _journal_facts(extra: dict[str, Any]) -> dict[str, Any]:
    j = extra.get("journal")
    if not isinstance(j, dict):
        return {}
    return {"lost": int(j.get("dropped") or 0), "errors": int(j.get("errors") or 0),
            "last_error": str(j.get("last_error") or "")}


def health_facts(st: Any) -> dict[str, Any]:
    """Every health fact the status line and the header show, as plain JSON-able values."""
    extra = st.extra or {}
    venues = getattr(st, "venues", None) or {}
    not_live = {}
    for v, s in venues.items():
        if _state_name(s.state) != "LIVE":
            word, why = venue_word(s)
            not_live[v] = {"state": _state_name(s.state), "reason": s.reason, "word": word,
                           "why": why}
    pnl, ccy = pnl_of(extra)
    failures = extra.get("role_failures")
    return {
        "mode": st.mode,
        "mode_label": mode_label(st.mode, extra),
        "bus": _bus_facts(st.bus or {}, extra),
        "uptime_s": round(st.uptime_s, 1),
        "quotes_per_s": round(st.quotes_per_s, 1),
        "detect_p50_ms": st.detect_p50_ms,
        "detect_p99_ms": st.detect_p99_ms,
        "open_opportunities": len(getattr(st, "open_opportunities", None) or ()),
        "min_net_bps": st.min_net_bps,
        "execution": bool(getattr(st, "execution_enabled", False)),
        "pnl": pnl,
        "pnl_ccy": ccy,
        "venues_live": len(venues) - len(not_live),
        "venues_total": len(venues),
        "venues_not_live": not_live,
        "role_failures": dict(failures) if isinstance(failures, dict) else {},
        "journal": _journal_facts(extra),
        "alerts": alerts_facts(extra),
    }


def _clip(s: str, w: int = REASON_W) -> str:
    s = " ".join(s.split())  # a multi-line exception text must stay on one header line
    return s if len(s) <= w else s[: w - 1] + "…"


def bus_text(b: dict[str, Any]) -> tuple[str, str]:
    """``embedded up`` / ``kafka up`` / ``kafka DOWN 12s`` / ``kafka NOAUTH <permission>``."""
    kind, state = b.get("kind", "?"), b.get("state", "")
    if state in ("up", "connected", "ok"):
        return f"{kind} {state}", OK
    if state == "unauthorized" or b.get("missing_permissions"):
        perms = b.get("missing_permissions") or [str(b.get("reason") or "").removeprefix("needs ")]
        return f"{kind} NOAUTH {_clip(perms[0], 28)}", BAD
    if state == "down":
        d = b.get("down_for_s")
        return f"{kind} DOWN{f' {d:.0f}s' if isinstance(d, (int, float)) else ''}", BAD
    return f"{kind} {state}".strip(), WARN if state else PLAIN


def health_fields(f: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    """The facts as short header fields: (priority, key, text, tone); lower priority
    numbers are kept longer on a narrow terminal. A fault raises its field's priority,
    so at 80 columns a Kafka outage or a failing role is shown before the clock."""
    b = f["bus"]
    bus, bus_tone = bus_text(b)
    bad_bus = bus_tone == BAD
    out: list[tuple[int, str, str, str]] = [
        (0, "mode", f" {f['mode_label']} ", PLAIN),
        (0, "execution", "EXEC ON" if f["execution"] else "EXEC OFF", OK if f["execution"] else PLAIN),
        (0, "min_net_bps", f"thr {f['min_net_bps']:+.1f}bps", PLAIN),
        # "kafka DOWN 12s" needs no "bus" prefix; "embedded up" does.
        (0 if bad_bus else 3, "bus", bus if b.get("kind") == "kafka" else f"bus {bus}", bus_tone),
    ]
    reason = b.get("reason") or ""
    already = reason.removeprefix("needs ") in (b.get("missing_permissions") or ())
    if b.get("kind") == "kafka" and b.get("state") != "up" and reason and not already:
        out.append((2, "bus_reason", _clip(reason), bus_tone))
    failures = f["role_failures"]
    if failures:
        txt = "restarts " + " ".join(f"{r}×{n}" for r, n in sorted(failures.items()))
        out.append((0, "role_failures", _clip(txt), BAD))
    total, live = f["venues_total"], f["venues_live"]
    if total:
        down = f["venues_not_live"]
        txt = f"LIVE {live}/{total}"
        # Grouped by what they mean: "binance RECONNECTING" for one or two venues,
        # "12 NOT CONNECTED" for more (live mode without network).
        groups: dict[str, list[str]] = {}
        for v, d in down.items():
            groups.setdefault(d.get("word") or d["state"], []).append(v)
        named = txt + "".join(" " + (" ".join(f"{v} {word}" for v in vs) if len(vs) <= 2
                                     else f"{len(vs)} {word}") for word, vs in groups.items())
        counted = txt + "".join(f" {len(vs)} {word}" for word, vs in groups.items())
        txt = named if len(named) <= VENUES_W or len(counted) > VENUES_W else counted
        # All LIVE is also on the venue panels: then it yields to the uptime and the clock.
        out.append((1 if down else 5, "venues", _clip(txt, VENUES_W), WARN if down else OK))
    out += [
        (1, "quotes_per_s", f"{fmt_rate(f['quotes_per_s'])} q/s", PLAIN),
        (2, "detect_ms", f"det {fmt_ms(f['detect_p50_ms'])}/{fmt_ms(f['detect_p99_ms'])}ms", PLAIN),
    ]
    if f["pnl"] is not None:
        out.append((2, "pnl", f"PnL {fmt_money(f['pnl'], 0).strip()} {f['pnl_ccy']}".rstrip(), PLAIN))
    if b.get("lost"):
        # The reliable outbox hit its bound: opportunity events/fills/states were lost.
        txt = "LOST " + " ".join(f"{t} {n}" for t, n in sorted(b["lost"].items()))
        out.append((0, "lost", _clip(txt), BAD))
    # An alarm only for a real loss, and it says which. Superseded quotes (a newer
    # quote of the same venue+symbol replaced them) are the design and never shown
    # as drops; quotes shed from a full inbox cost freshness, not an event, so they are
    # a plain low-priority count. A dropped opportunity, fill, status or wallet event
    # is lost to its consumer: red, first ("LOST" above covers the Kafka outbox).
    by_topic = dict(b.get("drops_by_topic") or {})
    for t, n in (b.get("lost") or {}).items():
        by_topic[t] = by_topic.get(t, 0) - n
    events = {t: n for t, n in sorted(by_topic.items()) if t != "quotes" and n > 0}
    if events:
        txt = "DROPPED " + " ".join(f"{t} {n}" for t, n in events.items())
        out.append((0, "drops", _clip(txt), BAD))
    if by_topic.get("quotes", 0) > 0:
        out.append((4, "quote_drops", f"quotes shed {by_topic['quotes']}", PLAIN))
    if b.get("superseded"):
        # Shown as what it is, where there is room: information, never an alarm.
        out.append((6, "superseded", f"superseded {fmt_rate(b['superseded'])}", PLAIN))
    j = f.get("journal") or {}
    if j.get("lost") or j.get("errors"):
        # The journal's writer could not commit (disk full, locked): records are gone.
        txt = f"JOURNAL LOST {j.get('lost', 0)}" + (f" {j['last_error']}" if j.get("last_error") else "")
        out.append((0, "journal", _clip(txt), BAD))
    out += [
        (5, "open_opportunities", f"open {f['open_opportunities']}", PLAIN),  # also in the log title
        (3, "uptime_s", f"up {fmt_uptime(f['uptime_s'])}", PLAIN),
    ]
    return out + alerts_fields(f.get("alerts"))


# ---------------------------------------------------------------- webhook alerts


def alerts_facts(extra: dict[str, Any]) -> dict[str, Any] | None:
    """The alerts role's health (None when this process sends no alerts): per webhook
    its host, ok/failing/idle, counts and last error; what the limits held back."""
    a = extra.get("alerts")
    if not isinstance(a, dict):
        return None
    hooks = [{k: h.get(k) for k in ("target", "state", "sent", "failed", "retries", "dropped",
                                    "queued", "last_error")} for h in a.get("webhooks") or ()]
    return {"webhooks": hooks, "failing": sum(h["state"] == "failing" for h in hooks),
            "sent": sum(int(h["sent"] or 0) for h in hooks),
            "dropped": sum(int(h["dropped"] or 0) for h in hooks),
            "suppressed": int(a.get("suppressed") or 0), "rules": list(a.get("rules") or ())}


def alerts_fields(a: dict[str, Any] | None) -> list[tuple[int, str, str, str]]:
    """A failing webhook is a fault (kept at 80 columns, with its error); alerts dropped
    from a full queue warn; a healthy one yields to everything else."""
    if not a:
        return []
    bad = [h for h in a["webhooks"] if h["state"] == "failing"]
    if bad:
        h = bad[0]
        txt = f"alerts FAIL {len(bad)}/{len(a['webhooks'])} {h['last_error'] or ''}"
        return [(0, "alerts", _clip(txt.strip(), 28), BAD)]
    if a["dropped"]:
        return [(2, "alerts", f"alerts dropped {a['dropped']}", WARN)]
    return [(5, "alerts", f"alerts {a['sent']}", PLAIN)]


__all__ = ["BAD", "OK", "WARN", "alerts_facts", "alerts_fields", "bus_text", "health_facts",
           "health_fields", "mode_label", "pnl_of", "venue_word"]
