"""Faust's partition assignor, made safe for static group membership.

With ``TACTFUL_INSTANCE_ID`` set, a restarted worker takes over its old
member of the consumer group (KIP-345). The broker then hands it the
assignment its old member had, computed from the old member's metadata:
Faust's assignor puts the worker's web address (``canonical_url``) in that
metadata and asserts on assignment that it is its own. A restarted worker
whose address changed (a new port, a pod's new IP) failed that assertion,
which ended aiokafka's coordinator routine and left the worker alive with no
partition for good. Measured with ``python -m bench restarts``.

This subclass takes the assignment with the worker's current address and
logs it; the other workers learn the new address at the next rebalance. The
address is what ``/customers/{id}`` forwarding uses, so give a static member
a stable one (``TACTFUL_ADVERTISED_URL``; the StatefulSet uses the pod's DNS
name). The subclass is installed through Faust's public ``PartitionAssignor``
setting; what it reads of Faust's assignor is pinned by
``tests/live/faust/test_private_api.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientMetadata

log = logging.getLogger(__name__)


class StaticMemberAssignor(PartitionAssignor):
    def on_assignment(self, assignment: Any) -> None:
        own = str(self.app.conf.canonical_url)
        metadata = ClientMetadata.loads(self._decompress(assignment.user_data))
        if metadata.url != own:
            log.warning(
                "the group handed this worker an assignment made for %s (its address before a restart); "
                "taking it as %s: other workers forward to the new address after the next rebalance",
                metadata.url,
                own,
            )
            assignment = type(assignment)(
                assignment.version,
                assignment.assignment,
                self._compress(metadata.derive(url=own).dumps()),
            )
        super().on_assignment(assignment)
