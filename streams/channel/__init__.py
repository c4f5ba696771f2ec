"""The channel client: for channel teams, one channel's decisions handed to your function once.

::

    from streams.channel import ChannelClient, Delivery, Forget
    from streams.settings import Settings

    def send(d: Delivery) -> None:
        if d.redelivered and outbox.has(d.decision.decision_id):
            return  # an earlier attempt got this far before it died
        outbox.send(d.decision)
        client.report(d.decision, "delivered")

    with ChannelClient(Settings.from_env(os.environ), "email", group="email-sender") as client:
        client.run(send, on_forget=lambda f: outbox.erase(f.customer_id))

What it reads: the channel's decision topic (``Settings.topics.decision``,
``decisions.<channel>``), in a consumer group of your naming, with the
deployment's Kafka options (TLS, SASL: :mod:`streams.clients`) and
``isolation.level=read_committed``.

**Once.** Each decision id is kept in Redis (the settings' URL, keys under
``{prefix}:ch:{group}:``, see :mod:`streams.channel.ledger`) with an expiry
(30 days by default). Before your function is called the id is *claimed*
(an attempt counter); after it returns the id is marked *done*, and only then
can the partition's offset be committed past it. So:

* a decision whose function returned and was marked done is never handed
  over again, whatever happens to the process or the offsets (a restart, a
  rebalance, an offset reset within the expiry): it is counted as a duplicate;
* a decision is never lost: the committed offset never passes a decision
  that is not done;
* the one window: if the process dies (or your function raises) after your
  function began and before the done mark landed, the next consumer hands
  the decision over again with ``Delivery.attempt`` one higher. No client
  can close this window for you (your side effect and the mark are in two
  systems), but it can tell you: when ``redelivered`` is true, check your own
  records before acting again, as in the example above. A function that does
  this, or whose effect is idempotent by ``decision_id``, acts once per
  decision; ``tests/integration/test_channel_client.py`` kills the consumer
  with SIGKILL while it consumes and checks exactly that.

**not_before.** An ENGAGE whose ``not_before`` (quiet hours) is still ahead is
held in memory and handed over when it falls due. It holds only its own
customer: that customer's later decisions wait behind it (a customer's
decisions are handed over in topic order), every other customer of the
partition goes on. The partition's committed offset stays at the oldest held
decision, so a restart reads the held ones again (and skips, as duplicates,
what was handed over meanwhile). More than ``max_held`` held decisions pause
reading until some fall due.

**Expired decisions** (``expires_at`` passed, when read or when their
``not_before`` came) are skipped and counted (``ChannelStats.expired``).

**RELEASE** decisions are handed over like the others: they lift the
suppression they name (same channel and category) before its ``expires_at``.
SUPPRESS and ENGAGE likewise; only emitted decisions reach a channel topic.

**Forget records** (a customer erased, contract section 9, docs/erasure.md)
go to ``on_forget`` as a :class:`Forget`, once, like a decision. Before that,
the customer's decisions still held for their ``not_before`` are dropped
(``ChannelStats.dropped``): the erasure asks that they not be acted on. Your
``on_forget`` should delete what you hold about the customer. It is required:
a channel client that ignores erasures is a bug.

**Outcomes** (contract 7.5): :meth:`ChannelClient.report` writes a
``decision.<outcome>`` touchpoint with the attribute ``decision_id`` to the
input topic, Avro as ``tactful feed`` writes it. Reported from your function,
it is on the broker before the decision is marked done; its event id is
deterministic, so a redelivered hand-over that reports again is a duplicate
the workers ignore.
"""

from streams.channel.client import ChannelClient, ChannelStats, Delivery
from streams.channel.outcomes import OUTCOMES, outcome_event
from streams.channel.records import Forget

__all__ = ["OUTCOMES", "ChannelClient", "ChannelStats", "Delivery", "Forget", "outcome_event"]
