"""Layout 2 on Redis Cluster: every key one script call or one read touches lies in its customer's slot.

Slots are computed with redis-py's own ``key_slot`` (CRC16 of the hash tag, as
the server does), over the commands :func:`apply_writes` really queues.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from streams.errors import InputError
from streams.mirror import (
    ALL_CATEGORIES,
    MirrorWrite,
    apply_script,
    apply_writes,
    category_key,
    channel_key,
    customer_pattern,
    customer_slot,
    customer_tag,
    generation_key,
    lookup_keys,
)
from streams.mirror.keys import _APPLY_LUA
from tests.mirror.support import HOUR, P, run_async

# Any text at all, braces, colons and percent signs included.
ids = st.text(min_size=1, max_size=20)
categories = st.one_of(st.just(ALL_CATEGORIES), ids)


def slot(key: str | bytes) -> int:
    return key_slot(key.encode("utf-8") if isinstance(key, str) else key)


class RecordingPipeline:
    """Stands in for a (cluster) pipeline: records each queued command, answers nothing."""

    def __init__(self, commands: list[tuple[Any, ...]]) -> None:
        self.commands = commands

    async def __aenter__(self) -> RecordingPipeline:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    def get(self, key: str) -> None:
        self.commands.append(("GET", key))

    async def execute(self) -> list[Any]:
        return [None] * len(self.commands)


class RecordingClient:
    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def pipeline(self, transaction: bool = False) -> RecordingPipeline:
        assert transaction is False
        return RecordingPipeline(self.commands)


def test_the_layout_is_pinned() -> None:
    assert category_key("tactful", "c-1042", "email", "phone") == "tactful:s:{c-1042}:email:phone"
    assert category_key("tactful", "c-1042", "email", "*") == "tactful:s:{c-1042}:email:*"
    assert channel_key("tactful", "c-1042", "email") == "tactful:s:{c-1042}:email"
    assert channel_key("tactful", "crm:42", "e:mail") == "tactful:s:{crm%3A42}:e%3Amail"
    assert lookup_keys("tactful", "c-1042", "email", "phone") == [
        "tactful:s:{c-1042}:email:phone",
        "tactful:s:{c-1042}:email:*",
    ]
    assert lookup_keys("tactful", "c-1042", "email", None) == ["tactful:s:{c-1042}:email"]
    assert customer_pattern("tactful", "c-1042") == "tactful:s:{c-1042}:*"
    assert generation_key("tactful") == "tactful:generation:2"
    # The slot is the tag's alone: the same as a key that is nothing but the tag.
    assert customer_slot("c-1042") == key_slot(b"{c-1042}") == key_slot(b"c-1042")


@given(customer=ids, channel=ids, category=categories, topology=st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True))
def test_both_hashes_of_a_write_and_every_lookup_share_the_customers_slot(
    customer: str, channel: str, category: str, topology: str
) -> None:
    expected = customer_slot(customer)
    write = MirrorWrite("set", customer, channel, category, topology, HOUR)
    keys = [key for key, _ in write.targets(P)]
    keys += lookup_keys(P, customer, channel, category) + lookup_keys(P, customer, channel, None)
    assert {slot(key) for key in keys} == {expected}
    # The tag is the first {...} of every key: nothing in an id can open or close it early.
    for key in keys:
        assert key[key.index("{") : key.index("}") + 1] == customer_tag(customer)


@given(
    writes=st.lists(
        st.tuples(ids, ids, categories, st.sampled_from(["set", "release"])),
        min_size=1,
        max_size=6,
    )
)
def test_each_script_call_touches_one_key_in_its_customers_slot(writes: list[tuple[str, str, str, str]]) -> None:
    client = RecordingClient()
    batch = [
        MirrorWrite("set" if op == "set" else "release", customer, channel, category, "t1", HOUR if op == "set" else 0)
        for customer, channel, category, op in writes
    ]
    script = apply_script(fakeredis.FakeAsyncRedis())
    asyncio.run(apply_writes(client, script, P, batch, 0, then_get=generation_key(P)))  # type: ignore[arg-type]

    evals = [cmd for cmd in client.commands if cmd[0] == "EVALSHA"]
    assert len(evals) == 2 * len(batch)
    for command, write in zip(evals, [w for w in batch for _ in range(2)], strict=True):
        numkeys = command[2]
        assert numkeys == 1, command  # the script is given one key: the one it touches
        assert slot(command[3]) == customer_slot(write.customer_id)
    # The generation is read by a command of its own, never inside a script.
    assert client.commands[-1] == ("GET", generation_key(P))


def test_the_script_touches_only_the_key_it_is_given() -> None:
    # On a cluster a script may touch only keys of one slot; this one names KEYS[1] and nothing else.
    assert "KEYS[1]" in _APPLY_LUA
    assert _APPLY_LUA.count("KEYS[") == 1
    calls = re.findall(r"redis\.call\('(\w+)',\s*(\w+)", _APPLY_LUA)
    assert len(calls) == _APPLY_LUA.count("redis.call(") >= 4
    assert {name for _, name in calls} == {"key"}


def test_an_empty_customer_id_has_no_tag() -> None:
    # "{}" is not a hash tag for Redis: the category key and the all-categories key would part.
    with pytest.raises(InputError, match="empty"):
        customer_tag("")


@run_async
async def test_a_redis_that_lost_the_script_gets_it_again_and_the_batch_lands() -> None:
    client = fakeredis.FakeAsyncRedis()
    script = apply_script(client)
    await client.script_flush()
    write = MirrorWrite("set", "c1", "email", "phone", "t1", 2**50)
    await apply_writes(client, script, P, [write], 0)
    assert await client.hgetall(category_key(P, "c1", "email", "phone")) == {b"t1": str(2**50).encode()}
