"""``t``: set the thresholds precisely (all NET bps; quote age in ms)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from arbtui.config import MAX_BPS, MIN_QUOTE_AGE_MS

FIELDS = (
    ("min_net_bps", "min NET edge (bps)", "per-unit hurdle: depth is taken while its marginal NET edge is at least this"),
    ("max_quote_age_ms", "max quote age (ms)", "a book not proven live this long is stale (>= 500)"),
    ("exec_min_net_bps", "execution NET (bps)", "the same hurdle sizes simulated orders (>= 0)"),
)


def validate(values: dict[str, str]) -> tuple[dict[str, float] | None, str]:
    out: dict[str, float] = {}
    for key, label, _ in FIELDS:
        raw = values.get(key, "").strip()
        try:
            v = float(raw)
        except ValueError:
            return None, f"{label}: {raw!r} is not a number"
        if key == "max_quote_age_ms":
            if not (MIN_QUOTE_AGE_MS <= v <= 3_600_000):
                return None, f"{label}: must be >= {MIN_QUOTE_AGE_MS:g} and <= 3600000"
        elif key == "exec_min_net_bps":
            if not (0 <= v < MAX_BPS):
                return None, f"{label}: must be >= 0 and < 10000"
        elif not (-MAX_BPS < v < MAX_BPS):
            return None, f"{label}: must be > -10000 and < 10000"
        out[key] = v
    return out, ""


class ThresholdsScreen(ModalScreen[dict[str, float] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", key_display="esc"),
        Binding("ctrl+s", "apply", "Apply", priority=True),
    ]
    DEFAULT_CSS = """
    ThresholdsScreen { align: center middle; }
    ThresholdsScreen > Vertical {
        width: 64; height: auto; border: round $accent; background: $surface; padding: 0 1;
    }
    ThresholdsScreen Grid { grid-size: 2; grid-columns: 22 1fr; height: auto; grid-rows: 3; }
    ThresholdsScreen Grid Label { height: 3; content-align: left middle; }
    ThresholdsScreen #error { color: $error; width: 1fr; height: auto; }
    ThresholdsScreen #hint { color: $text-muted; width: 1fr; height: auto; }
    """

    def __init__(self, min_net: float, max_age_ms: float, exec_net: float) -> None:
        super().__init__()
        self.initial = {"min_net_bps": min_net, "max_quote_age_ms": max_age_ms,
                        "exec_min_net_bps": exec_net}

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "thresholds"
            box.border_subtitle = "enter apply · esc cancel"
            with Grid():
                for key, label, _hint in FIELDS:
                    yield Label(label)
                    yield Input(f"{self.initial[key]:g}", id=key, type="number", select_on_focus=True)
            yield Label("", id="error")
            yield Label("\n".join(f"{lbl}: {hint}" for _, lbl, hint in FIELDS), id="hint")

    def on_mount(self) -> None:
        self.query_one("#min_net_bps", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> None:
        values = {key: self.query_one(f"#{key}", Input).value for key, _, _ in FIELDS}
        result, err = validate(values)
        if result is None:
            self.query_one("#error", Label).update(err)
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
