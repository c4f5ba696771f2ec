"""A channel team's consumer for test_channel_client.py: records each decision durably, once.

Run as ``python -m tests.integration.channel_consumer RECORDS CALLS KILL_ON DOOMED``
with the namespace's TACTFUL_* variables. Each call appends ``id attempt`` to
CALLS (fsync'd) on entry; the function's own effect is a line ``id`` in RECORDS
(fsync'd), written unless a redelivered call finds it there already (the check
the client's docstring asks of a function with side effects). On the first
attempt at a decision named in KILL_ON (comma separated) it SIGKILLs its own
process right after its effect: the window between the effect and the done
mark, made certain. Such a call first appends ``pid id`` to DOOMED (fsync'd):
from then on the process is bound to die by its own hand, so the test can tell
that a SIGKILL of its own which hit this process ended nothing that was not
ending anyway (and count restarts right). Forget records go to RECORDS as
``forget customer``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from streams.channel import ChannelClient, Delivery, Forget
from streams.settings import Settings


def append(path: Path, line: str) -> None:
    with path.open("a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def main() -> None:
    records, calls, kill_on = Path(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3].split(","))
    doomed = Path(sys.argv[4])

    def on_decision(d: Delivery) -> None:
        did = d.decision.decision_id
        dies = d.attempt == 1 and did in kill_on
        if dies:  # before anything else, so a kill from outside from here on is not counted as one
            append(doomed, f"{os.getpid()} {did}")
        append(calls, f"{did} {d.attempt}")
        if d.redelivered and did in records.read_text().split():
            return
        append(records, did)
        if dies:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_forget(f: Forget) -> None:
        append(records, f"forget {f.customer_id}")

    settings = Settings.from_env(os.environ)
    with ChannelClient(settings, "email", group=f"{settings.topics.app_id}-email-sender") as client:
        client.run(on_decision, on_forget=on_forget)


if __name__ == "__main__":
    main()
