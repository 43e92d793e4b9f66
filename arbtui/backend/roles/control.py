"""Operator control over the bus: commands on the control topic, applied by the roles
that own the setting, acknowledged with what they actually applied.

Who applies what (``OWNERS``):

    threshold       {"min_net_bps": x}           detect
    max_quote_age   {"ms": x}                    detect
    symbol          {"symbol": s, "enabled": b}  detect
    venue           {"venue": v, "enabled": b}   detect (leaves detection), feed (stops /
                                                 restarts that venue's feed) and alerts (a
                                                 venue switched off is no outage)
    execution       {"enabled": b}               execute
    exec_threshold  {"min_net_bps": x}           execute

Every process that runs one of those roles has one ``ControlAgent``. It reads the
control topic outside any consumer group (so EVERY instance of a role gets every
command: two detectors both apply a threshold), applies a command at most once
(de-duplicated by id: a redelivery after a lost acknowledgement, or a command this
process sent and applied itself), and answers with one ``model.ControlAck`` per
local role that owns it, carrying that role's settings after the command. On Kafka
each agent also states its roles' settings on start, every
``bus.kafka.snapshot_interval_s`` and on stop ("stopped"), so a viewer that starts
later, or a detector that started after a command, is seen as it really is.

The viewer (``--role view``) has a ``ControlDesk``: it builds commands, tracks
each as *pending* until every instance of the owning role it knows of has acked
(or the first one, if it knows none), marks it *UNACKED* after ``TIMEOUT_S``, and
keeps each role instance's last stated settings, which are what the header shows
(``threshold_text``: one value, or "mixed 2.0/3.0" when detectors disagree).

A role instance started after a command runs its config's value, and a trader
expects the setting to hold. So the desk remembers the operator's last command per
setting (its own and other viewers', in the order the control topic carries them,
which is the order every agent applies them), and when an instance first states
settings that differ from one, re-sends that command to it alone (``owner``,
``target``; a fresh id, the original's ``ts_ns``, ``resend_of`` naming it). A
re-send is weaker than a command: an agent applies it only if that role has applied
nothing at least as new for the setting (by ``ts_ns``), so a re-send that races a
newer command, or a second viewer's copy of the same re-send, changes nothing. The
desk never re-sends on its own schedule, only on an instance's first statement, so
it cannot fight the operator: the newest command wins.

In one process the engine applies a command through the same ``ControlAgent.apply``
(at once, so the dashboard shows it in the next frame) and publishes it and its
acks on the bus like any other process would.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from arbtui.backend.bus import CONTROL, Bus
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.model import Control, ControlAck

log = logging.getLogger("arbtui.engine")

#: cmd -> the roles that apply it.
OWNERS: dict[str, tuple[str, ...]] = {
    "threshold": ("detect",),
    "max_quote_age": ("detect",),
    "symbol": ("detect",),
    "venue": ("detect", "feed", "alerts"),
    "execution": ("execute",),
    "exec_threshold": ("execute",),
}
#: A command no owning role acknowledged within this long is shown as UNACKED.
TIMEOUT_S = 5.0
#: The bus key of control messages: one partition, so commands keep their order.
CONTROL_KEY = "control"
#: How many command ids an agent remembers to apply each only once.
_SEEN = 10_000


def subject(ctl: Control) -> Any:
    """Which instance of a setting a command changes: the venue or symbol it toggles,
    None for the one-per-role settings (a threshold)."""
    return ctl.args.get(ctl.cmd) if ctl.cmd in ("venue", "symbol") else None


class Applier(Protocol):
    """What a role offers the agent: its name, ``apply_control`` (raises ValueError
    for a command it cannot apply) and ``control_state`` (its settings, JSON-able)."""

    name: str

    def apply_control(self, cmd: str, args: dict[str, Any]) -> None: ...

    def control_state(self) -> dict[str, Any]: ...


class NotOwned(Exception):
    """Raised by ``apply_control`` for a command about something this instance does not
    have (a feed process asked to toggle a venue another feed process runs): no ack."""


class VenueSwitch:
    """A role that only needs to hear of venue toggles (the alerts role), as an Applier."""

    def __init__(self, name: str, fn: Any) -> None:
        self.name = name
        self._fn = fn
        self._off: set[str] = set()

    def apply_control(self, cmd: str, args: dict[str, Any]) -> None:
        venue = args.get("venue")
        if cmd != "venue" or not isinstance(venue, str):
            raise ValueError(f"{cmd} {args}: not a venue toggle")
        on = flag(args)
        self._fn(venue, on)
        (self._off.discard if on else self._off.add)(venue)

    def control_state(self) -> dict[str, Any]:
        return {"disabled_venues": sorted(self._off)}


def finite(args: dict[str, Any], key: str, lo: float, hi: float) -> float:
    """``args[key]`` as a float in (lo, hi), else ValueError naming key and range."""
    v = args.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not (lo < v < hi):
        raise ValueError(f"{key} = {v!r}: needs a number between {lo:g} and {hi:g}")
    return float(v)


def flag(args: dict[str, Any], key: str = "enabled") -> bool:
    v = args.get(key)
    if not isinstance(v, bool):
        raise TypeError(f"{key} = {v!r}: needs true or false")
    return v


class ControlAgent:
    """Applies control commands to this process's roles and acknowledges them."""

    def __init__(self, bus: Bus, sup: Supervisor, owner: str, *, clock: Clock = LIVE,
                 announce_s: float = 2.0, publish: bool = True) -> None:
        """``publish`` False: apply, never put acks on the bus (a replay's own settings)."""
        self.bus = bus
        self.publish = publish
        self.sup = sup
        self.owner = owner
        self.clock = clock
        self.announce_s = announce_s
        self.roles: dict[str, Applier] = {}
        self.applied = 0  # commands applied here (by any local role)
        self.rejected = 0
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        #: (role, cmd, subject) -> ts_ns of the newest command that role applied for it;
        #: a re-send no newer than that is stale and skipped
        self._applied_ts: dict[tuple[str, str, Any], int] = {}
        self.stale_resends = 0
        self._task: asyncio.Task | None = None
        self._sub: Any = None
        self.stopping = False

    def register(self, role: Applier) -> None:
        self.roles[role.name] = role

    # ------------------------------------------------------------------ applying

    def _first(self, cid: str) -> bool:
        if cid in self._seen:
            return False
        self._seen.add(cid)
        self._seen_order.append(cid)
        if len(self._seen_order) > _SEEN:
            self._seen.discard(self._seen_order.popleft())
        return True

    def apply(self, ctl: Control) -> list[ControlAck]:
        """Apply ``ctl`` with every local role that owns it (once per id), publish and
        return one ack per role."""
        if ctl.owner and ctl.owner != self.owner:
            return []
        owners = OWNERS.get(ctl.cmd, ())
        mine = [r for name, r in self.roles.items()
                if name in owners and (not ctl.target or ctl.target == name)]
        if not mine or not self._first(ctl.id):
            return []
        acks = []
        subj = subject(ctl)
        for role in mine:
            key = (role.name, ctl.cmd, subj)
            last = self._applied_ts.get(key)
            if ctl.resend_of and last is not None and ctl.ts_ns <= last:
                # A newer command for this setting got here first (or another viewer's
                # copy of this re-send): applying it would undo the operator's newest.
                self.stale_resends += 1
                log.info("control %s re-sent by %s skipped: %s already applied a newer one",
                         ctl.cmd, ctl.sender or "?", role.name)
                continue
            ok, err = True, ""
            try:
                role.apply_control(ctl.cmd, dict(ctl.args))
                self.applied += 1
                self._applied_ts[key] = ctl.ts_ns if last is None else max(last, ctl.ts_ns)
            except NotOwned:
                continue
            except (ValueError, TypeError, KeyError) as e:
                ok, err = False, str(e)
                self.rejected += 1
                log.warning("control %s %s from %s rejected by %s: %s", ctl.cmd, ctl.args,
                            ctl.sender or "?", role.name, err)
            acks.append(ControlAck(control_id=ctl.id, cmd=ctl.cmd, role=role.name,
                                   owner=self.owner, applied=role.control_state(), ok=ok,
                                   error=err, ts_ns=self.clock.now_ns()))
        if self.publish:
            for a in acks:
                self.bus.publish(CONTROL, CONTROL_KEY, a)
        return acks

    def announce(self, what: str = "status") -> None:
        """State every local role's settings (``control_id`` empty)."""
        now = self.clock.now_ns()
        for role in self.roles.values():
            self.bus.publish(CONTROL, CONTROL_KEY, ControlAck(
                control_id="", cmd=what, role=role.name, owner=self.owner,
                applied=role.control_state() if what != "stopped" else {}, ts_ns=now))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the control topic (only worth it where another process can send: Kafka)."""
        if not self.roles or self._task is not None:
            return
        self.stopping = False
        self._sub = self.bus.subscribe(CONTROL, "control", maxsize=100_000)
        ready = getattr(self.bus, "free_ready", None)
        if ready is not None and getattr(self.bus, "state", "") == "up":
            # Announce only once the control topic is read from its end: a viewer's
            # re-send answers the announcement and must not land before our position.
            try:
                await asyncio.wait_for(ready.wait(), 10)
            except TimeoutError:
                pass
        self.announce()
        self._task = self.sup.spawn("control", self._loop)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.announce("stopped")  # before the bus drains: viewers forget us at once
        self.stopping = True
        await self.sup.cancel([self._task])
        self._task = None

    async def _loop(self) -> None:
        sub, clock = self._sub, self.clock
        next_announce = clock.monotonic() + self.announce_s
        while not (self.stopping or self.sup.stopping):
            wait = max(0.0, next_announce - clock.monotonic())
            for m in await sub.get_batch(min(wait, 0.5)):
                if isinstance(m, Control):
                    self.apply(m)
            if clock.monotonic() >= next_announce:
                self.announce()
                next_announce = clock.monotonic() + self.announce_s


# ---------------------------------------------------------------------- the viewer's side


@dataclass
class _Seen:
    applied: dict[str, Any]
    heard: float  # monotonic


@dataclass
class _Pending:
    ctl: Control
    sent: float  # monotonic
    #: (role, owner) instances expected to ack; empty = the first ack resolves it
    expect: set[tuple[str, str]]
    acked: list[ControlAck] = field(default_factory=list)


def describe(cmd: str, args: dict[str, Any]) -> str:
    """A command in a few words, for the header and the notifications."""
    on = "on" if args.get("enabled") else "off"
    if cmd == "threshold":
        return f"thr {args.get('min_net_bps', 0):+.1f}"
    if cmd == "exec_threshold":
        return f"exec thr {args.get('min_net_bps', 0):+.1f}"
    if cmd == "max_quote_age":
        return f"max age {args.get('ms', 0):.0f}ms"
    if cmd == "execution":
        return f"exec {on}"
    if cmd in ("venue", "symbol"):
        return f"{args.get(cmd, '?')} {on}"
    return cmd


class ControlDesk:
    """A viewer's commands and what the roles say they apply (see the module docstring)."""

    def __init__(self, sender: str, *, clock: Clock = LIVE, timeout_s: float = TIMEOUT_S,
                 forget_s: float = 8.0) -> None:
        self.sender = sender
        self.clock = clock
        self.timeout_s = timeout_s
        self.forget_s = forget_s
        self.roles: dict[tuple[str, str], _Seen] = {}
        self.pending: dict[str, _Pending] = {}
        #: commands that timed out without an ack, newest last (shown until superseded)
        self.unacked: deque[Control] = deque(maxlen=8)
        #: commands a role refused: (control, error), newest last
        self.rejected: deque[tuple[Control, str]] = deque(maxlen=8)
        self.acked = 0
        self._n = 0
        #: (cmd, subject) -> the operator's last command for that setting (control-topic
        #: order), re-sent to a role instance that first states something else
        self.last: dict[tuple[str, Any], Control] = {}
        self.resent = 0

    def new(self, cmd: str, args: dict[str, Any], target: str = "") -> Control:
        self._n += 1
        return Control(id=f"{self.sender}#{self._n}", cmd=cmd, args=args, target=target,
                       sender=self.sender, ts_ns=self.clock.now_ns())

    def remember(self, ctl: Control) -> None:
        """``ctl`` is now the operator's last word on its setting: for every instance of
        the owning role, not one process (``owner``), and not itself a re-send."""
        if ctl.owner or ctl.resend_of or ctl.cmd not in OWNERS:
            return
        key = (ctl.cmd, subject(ctl))
        self.last.pop(key, None)  # re-insert: the dict's order is the commands' order
        self.last[key] = ctl

    def on_control(self, ctl: Control) -> None:
        """A command read from the control topic (another viewer's, or this desk's own
        coming back): the topic's order is the order every agent applies them in."""
        if ctl.ts_ns and self.clock.now_ns() - ctl.ts_ns > self.forget_s * 1e9:
            return  # history (--since): a command from before this desk says nothing
        self.remember(ctl)

    def sent(self, ctl: Control) -> None:
        self.remember(ctl)
        # The first owner is the one whose ack settles it: a venue toggle is settled by
        # the detectors (the feed process that runs the venue acks too, others do not).
        owners = OWNERS.get(ctl.cmd, ())[:1]
        expect = {k for k in self.roles if k[0] in owners
                  and (not ctl.target or ctl.target == k[0])
                  and (not ctl.owner or ctl.owner == k[1])}
        # A newer command for the same setting replaces an older one still waiting.
        for cid, p in list(self.pending.items()):
            if p.ctl.cmd == ctl.cmd and _same_subject(p.ctl, ctl):
                del self.pending[cid]
        self.unacked = deque((c for c in self.unacked
                              if not (c.cmd == ctl.cmd and _same_subject(c, ctl))), maxlen=8)
        self.rejected = deque(((c, e) for c, e in self.rejected
                               if not (c.cmd == ctl.cmd and _same_subject(c, ctl))), maxlen=8)
        self.pending[ctl.id] = _Pending(ctl, self.clock.monotonic(), expect)

    def on_ack(self, a: ControlAck) -> list[Control]:
        """Take in a role instance's ack or statement; returns the re-sends (to put on
        the control topic) for an instance heard for the first time that runs a setting
        other than the operator's last command for it."""
        if a.ts_ns and self.clock.now_ns() - a.ts_ns > self.forget_s * 1e9:
            return []  # history (a viewer started with --since): says nothing about now
        now = self.clock.monotonic()
        key = (a.role, a.owner)
        out: list[Control] = []
        if not a.ok and a.control_id:
            # A refused command is no setting to hold: never re-send it.
            for k, c in list(self.last.items()):
                if c.id == a.control_id:
                    del self.last[k]
        if a.cmd == "stopped":
            self.roles.pop(key, None)
            for p in self.pending.values():
                p.expect.discard(key)
        else:
            if key not in self.roles:
                out = self._catch_up(a.role, a.owner, a.applied)
            self.roles[key] = _Seen(dict(a.applied), now)
        p = self.pending.get(a.control_id) if a.control_id else None
        if p is None:
            return out
        p.acked.append(a)
        p.expect.discard(key)
        if not a.ok:
            self.rejected.append((p.ctl, f"{a.role}: {a.error}"))
        if not p.expect:
            del self.pending[a.control_id]
            self.acked += 1
        return out

    def _catch_up(self, role: str, owner: str, applied: dict[str, Any]) -> list[Control]:
        out = []
        for ctl in self.last.values():
            if role not in OWNERS[ctl.cmd] or (ctl.target and ctl.target != role):
                continue
            if _holds(ctl, applied) is not False:
                continue  # already runs it, or states nothing about it (not its venue)
            self._n += 1
            out.append(Control(id=f"{self.sender}#{self._n}", cmd=ctl.cmd, args=dict(ctl.args),
                               target=role, owner=owner, sender=self.sender, ts_ns=ctl.ts_ns,
                               resend_of=ctl.id))
            self.resent += 1
            log.info("control %s (%s) re-sent to %s %s: it started after the command",
                     describe(ctl.cmd, ctl.args), ctl.id, role, owner)
        return out

    def sweep(self) -> None:
        now = self.clock.monotonic()
        for cid, p in list(self.pending.items()):
            if now - p.sent >= self.timeout_s:
                del self.pending[cid]
                if not p.acked:
                    self.unacked.append(p.ctl)
                    log.warning("control %s (%s) not acknowledged within %.0fs",
                                describe(p.ctl.cmd, p.ctl.args), cid, self.timeout_s)
        for k, s in list(self.roles.items()):
            if now - s.heard > self.forget_s:
                del self.roles[k]

    # ------------------------------------------------------------------ what is applied

    def of(self, role: str) -> list[dict[str, Any]]:
        return [s.applied for (r, _), s in sorted(self.roles.items()) if r == role]

    def _pending_arg(self, cmd: str, key: str, subject: tuple[str, Any] | None = None) -> Any:
        for p in reversed(self.pending.values()):
            if p.ctl.cmd == cmd and (subject is None or p.ctl.args.get(subject[0]) == subject[1]):
                return p.ctl.args.get(key)
        return None

    def settings(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """What the dashboard's controls start from: the applied settings with pending
        commands laid over (pressing + twice moves the threshold twice), else
        ``defaults`` (the config's) while no role has stated any."""
        det, exe, feed = self.of("detect"), self.of("execute"), self.of("feed")
        out = dict(defaults)
        for name, cmd, arg, stated, key in (
                ("min_net_bps", "threshold", "min_net_bps", det, "min_net_bps"),
                ("max_quote_age_ms", "max_quote_age", "ms", det, "max_quote_age_ms"),
                ("execution_min_net_bps", "exec_threshold", "min_net_bps", exe, "min_net_bps")):
            v = self._pending_arg(cmd, arg)
            if v is None and stated:
                v = stated[0].get(key)
            if v is not None:
                out[name] = float(v)
        en = self._pending_arg("execution", "enabled")
        if en is None:
            en = any(e.get("enabled") for e in exe) if exe else None
        if en is not None:
            out["execution_enabled"] = bool(en)
        venues = set(defaults.get("disabled_venues", ()))
        if det or feed:
            venues = {v for s in det + feed for v in s.get("disabled_venues", ())}
        syms = set(defaults.get("disabled_symbols", ()))
        if det:
            syms = {x for s in det for x in s.get("disabled_symbols", ())}
        for p in self.pending.values():
            a = p.ctl.args
            if p.ctl.cmd == "venue":
                (venues.discard if a.get("enabled") else venues.add)(a.get("venue"))
            elif p.ctl.cmd == "symbol":
                (syms.discard if a.get("enabled") else syms.add)(a.get("symbol"))
        out["disabled_venues"] = frozenset(venues)
        out["disabled_symbols"] = frozenset(syms)
        out["executing"] = bool(exe)
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able: what the roles apply and the commands in flight (``extra["control"]``)."""
        now = self.clock.monotonic()
        det, exe = self.of("detect"), self.of("execute")
        return {
            "detectors": len(det),
            "thresholds": sorted({float(d["min_net_bps"]) for d in det
                                  if isinstance(d.get("min_net_bps"), (int, float))}),
            "executors": len(exe),
            "execution": [bool(e.get("enabled")) for e in exe],
            "feeds": len(self.of("feed")),
            "pending": [{"id": p.ctl.id, "cmd": p.ctl.cmd, "args": dict(p.ctl.args),
                         "what": describe(p.ctl.cmd, p.ctl.args),
                         "age_s": round(now - p.sent, 1),
                         "acked": len(p.acked)} for p in self.pending.values()],
            "unacked": [{"id": c.id, "cmd": c.cmd, "args": dict(c.args),
                         "what": describe(c.cmd, c.args)} for c in self.unacked],
            "rejected": [{"id": c.id, "what": describe(c.cmd, c.args), "error": e}
                         for c, e in self.rejected],
            "acked": self.acked,
            "resent": self.resent,
        }


def _holds(ctl: Control, applied: dict[str, Any]) -> bool | None:
    """Whether a role instance's stated settings already are what ``ctl`` asks for; None
    when they say nothing about it (a feed process that does not run the venue)."""
    a = ctl.args
    if ctl.cmd in ("venue", "symbol"):
        off = applied.get(f"disabled_{ctl.cmd}s")
        if not isinstance(off, list):
            return None
        if ctl.cmd == "venue" and "venues" in applied and a.get("venue") not in applied["venues"]:
            return None
        return (a.get(ctl.cmd) in off) == (not a.get("enabled"))
    have, want = {
        "threshold": ("min_net_bps", "min_net_bps"),
        "exec_threshold": ("min_net_bps", "min_net_bps"),
        "max_quote_age": ("max_quote_age_ms", "ms"),
        "execution": ("enabled", "enabled"),
    }.get(ctl.cmd, ("", ""))
    if have not in applied:
        return None
    return applied[have] == a.get(want)


def _same_subject(a: Control, b: Control) -> bool:
    """Two commands change the same setting (the same venue for venue toggles...)."""
    if a.cmd in ("venue", "symbol"):
        return a.args.get(a.cmd) == b.args.get(b.cmd)
    return True


def threshold_text(summary: dict[str, Any]) -> tuple[str, str]:
    """The header's threshold field from a viewer's control summary: (text, tone) where
    tone is "" / "warn" / "bad". The value is what the detectors state they apply;
    a command in flight shows as pending, one nobody acknowledged as UNACKED."""
    thr = summary.get("thresholds") or []
    if not summary.get("detectors"):
        text, tone = "thr ? (no detector)", "warn"
    elif len(thr) == 1:
        text, tone = f"thr {thr[0]:+.1f}bps", ""
    else:
        text, tone = "thr mixed " + "/".join(f"{t:.1f}" for t in thr), "warn"
    for p in summary.get("pending") or ():
        if p["cmd"] == "threshold":
            text += f" → {p['args'].get('min_net_bps', 0):+.1f} pending"
    for u in summary.get("unacked") or ():
        if u["cmd"] == "threshold":
            text += f" {u['args'].get('min_net_bps', 0):+.1f} UNACKED"
            tone = "bad"
    return text, tone


def commands_text(summary: dict[str, Any]) -> tuple[str, str]:
    """Other commands in flight / unacknowledged / refused, for the header ("" = none)."""
    parts, tone = [], ""
    pend = [p["what"] for p in summary.get("pending") or () if p["cmd"] != "threshold"]
    if pend:
        parts.append("pending " + ", ".join(pend))
        tone = "warn"
    un = [u["what"] for u in summary.get("unacked") or () if u["cmd"] != "threshold"]
    if un:
        parts.append("UNACKED " + ", ".join(un))
        tone = "bad"
    rej = summary.get("rejected") or ()
    if rej:
        parts.append(f"REFUSED {rej[-1]['what']}: {rej[-1]['error']}")
        tone = "bad"
    return " · ".join(parts), tone


__all__ = ["OWNERS", "TIMEOUT_S", "Applier", "ControlAgent", "ControlDesk", "NotOwned",
           "VenueSwitch",
           "commands_text",
           "describe", "threshold_text"]
