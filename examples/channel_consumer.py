"""A channel team's consumer in ten lines (README, "Channel client"): each email decision acted on once.

Run it with the deployment's TACTFUL_* variables (brokers, TLS/SASL, Redis):

    TACTFUL_BOOTSTRAP_SERVERS=... TACTFUL_REDIS_URL=... python examples/channel_consumer.py
"""

import os

from streams.channel import ChannelClient, Delivery, Forget
from streams.settings import Settings

outbox: dict[str, str] = {}  # stands in for your mailer's own (durable) record of what it sent


def send(d: Delivery) -> None:
    if d.redelivered and d.decision.decision_id in outbox:
        return  # an earlier attempt sent it, then died before the client marked it done
    outbox[d.decision.decision_id] = d.decision.customer_id  # your mailer: ENGAGE sends, SUPPRESS/RELEASE gate
    client.report(d.decision, "delivered")


def forget(f: Forget) -> None:  # an erased customer: delete what you hold about them
    for decision_id in [k for k, customer in outbox.items() if customer == f.customer_id]:
        del outbox[decision_id]


with ChannelClient(Settings.from_env(os.environ), "email", group="email-sender") as client:
    client.run(send, on_forget=forget)
