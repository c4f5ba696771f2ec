"""The last decisions a worker made for each customer, for the ``/customers/{id}`` view only.

Customer state keeps what future decisions depend on, not the decisions
themselves (a blocked engagement leaves nothing there), and the audit topic,
which keeps them all, is not a thing to read per request. So the runtime
notes here every record it publishes, in memory and bounded: at most
:data:`PER_CUSTOMER` per customer, for the :data:`CUSTOMERS` customers decided
for most recently (least recently decided dropped first). Nothing here
survives a restart or follows a partition to another worker: the view says
"recent", and ``tactful report --customer`` reads the audit topic for the
whole story. An erased customer's are dropped with the erase.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from streams.decisions import Decision

CUSTOMERS = 2_000
PER_CUSTOMER = 20


class RecentDecisions:
    def __init__(self, customers: int = CUSTOMERS, per_customer: int = PER_CUSTOMER) -> None:
        self.customers = customers
        self.per_customer = per_customer
        self._by_customer: OrderedDict[str, deque[Decision]] = OrderedDict()

    def add(self, decisions: Iterable[Decision]) -> None:
        kept = self._by_customer
        for d in decisions:
            mine = kept.get(d.customer_id)
            if mine is None:
                mine = kept[d.customer_id] = deque(maxlen=self.per_customer)
                if len(kept) > self.customers:
                    kept.popitem(last=False)
            else:
                kept.move_to_end(d.customer_id)
            mine.append(d)

    def of(self, customer_id: str) -> list[Decision]:
        return list(self._by_customer.get(customer_id, ()))

    def forget(self, customer_id: str) -> None:
        self._by_customer.pop(customer_id, None)

    def __len__(self) -> int:
        return len(self._by_customer)
