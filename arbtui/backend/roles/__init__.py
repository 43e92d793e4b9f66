"""The roles arbtui runs, one class per role, and the supervisor that keeps them up.

A role is one stage of the pipeline with one small interface (``base.Role``):

- ``await start()``  subscribe to its bus topics and spawn its loops under the
  ``Supervisor`` (a crash is logged, counted by name and restarted);
- ``await stop()``   cancel its loops and release what it holds (sockets, files);
- ``state()``        an immutable sample of what it knows, cheap enough to take
  ten times a second from another thread's point of view (the engine takes it
  on its own loop and hands the copy over).

Commands (thresholds, toggles) are plain methods on the role that owns the
setting and act at once; ``control.ControlAgent`` applies the ``model.Control``
messages of the control topic through them (``apply_control``) and answers
with a ``model.ControlAck`` (``control.ControlDesk`` is a viewer's side).
Roles talk to each other only through the bus:

    feed    (FeedRole)     venue feeds        -> quotes, status
    detect  (DetectRole)   quotes, status, wallets -> opportunities
    execute (ExecuteRole)  opportunities, quotes, status -> fills, wallets
    journal (JournalRole)  opportunities, fills -> SQLite
    view    (ViewRole)     quotes, status, opportunities, fills, control acks -> what a
                           dashboard shows; sends commands on the control topic
    alerts  (AlertsRole)   opportunities, status, fills -> webhook alerts (``[alerts]``)

so the same classes compose into one process (``backend.engine.Engine``, on the
embedded bus or Kafka) and into one process per role (``arbtui feed|detect|
execute`` and ``arbtui --role view``, on Kafka). A ``Market`` is the process's
own picture of the latest LIVE quote per venue+symbol and the quote rate; the
engine gives it to whichever role sees quotes first in that process.

To compose roles yourself (replay does): build a ``Supervisor`` and a bus,
construct the roles with them, ``await bus.start()``, then ``start()`` each
role; stop them in reverse order of their data flow (detect first, so its
closing events still reach the bus), then ``await sup.stop()`` and the bus.
"""

from arbtui.backend.roles.alerts import AlertsRole
from arbtui.backend.roles.base import Market, Role
from arbtui.backend.roles.detect import DetectRole, DetectState
from arbtui.backend.roles.execute import ExecuteRole
from arbtui.backend.roles.feed import FeedRole, feed_plan
from arbtui.backend.roles.journal import JournalRole
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.backend.roles.view import ViewRole, ViewState

__all__ = ["AlertsRole", "DetectRole", "DetectState", "ExecuteRole", "FeedRole", "JournalRole", "Market",
           "Role", "Supervisor", "ViewRole", "ViewState", "feed_plan"]
