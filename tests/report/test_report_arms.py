"""The report's arms (contract 7.3): the order, and a catalog read by the one loader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from streams.decisions import bucket
from streams.errors import TopologyError
from streams.report.arms import (
    HOLDOUT_GLOBAL,
    HOLDOUT_TOPOLOGY,
    SHADOW,
    TREATED,
    UNKNOWN,
    HoldoutCatalog,
    TopologyArms,
)


@pytest.mark.parametrize(
    ("salt", "customer", "expected"),
    [
        ("tactful", "c000001", 9247),
        ("tactful", "c000002", 9460),
        ("2026-12", "c000114", 8456),
        ("2026-12/activation_nudge", "c000114", 7761),
        ("tactful", "", 7162),
    ],
)
def test_bucket_is_pinned(salt: str, customer: str, expected: int) -> None:
    assert bucket(salt, customer) == expected
    # The contract's text, spelt another way: the first 8 bytes of the digest, big-endian, mod 10000.
    digest = hashlib.blake2b(f"{salt}\x1f{customer}".encode(), digest_size=8).hexdigest()
    assert int(digest, 16) % 10_000 == expected


def _customer_in(salt: str, inside: bool, below: int) -> str:
    for i in range(100_000):
        c = f"c{i}"
        if (bucket(salt, c) < below) == inside:
            return c
    raise AssertionError("no such customer")


def test_arms_in_their_order() -> None:
    catalog = HoldoutCatalog(
        global_holdout=5000,
        salt="s",
        topologies={
            "shadowed": TopologyArms(shadow=True, holdout=10_000),
            "service": TopologyArms(service=True),
            "own": TopologyArms(holdout=5000),
        },
    )
    held_globally = _customer_in("s", True, 5000)
    assert catalog.arm("shadowed", held_globally) == SHADOW  # shadow comes first
    assert catalog.arm("service", held_globally) == TREATED  # a service topology is never in the global group
    assert catalog.arm("own", held_globally) == HOLDOUT_GLOBAL
    not_global = _customer_in("s", False, 5000)
    in_own = next(f"c{i}" for i in range(100_000) if bucket("s", f"c{i}") >= 5000 and bucket("s/own", f"c{i}") < 5000)
    assert catalog.arm("own", in_own) == HOLDOUT_TOPOLOGY
    treated = next(f"c{i}" for i in range(100_000) if bucket("s", f"c{i}") >= 5000 and bucket("s/own", f"c{i}") >= 5000)
    assert catalog.arm("own", treated) == TREATED
    assert catalog.arm("service", not_global) == TREATED
    assert catalog.arm("gone", treated) == UNKNOWN


TOPOLOGY = (
    "topology: {name}\nversion: 1\n{head}"
    "when: {{sequence: [{{as: a, event: a}}]}}\nthen:\n  - engage: {{channel: sms, action: x}}\n"
)


def test_catalog_from_a_folder_reads_the_keys_arms_need(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text('lateness: 10m\nholdout:\n  percent: 2.5%\n  salt: "2026-12"\n')
    goal = "holdout: 10%\ngoal: {event: purchase, within: 7d}\n"
    (tmp_path / "a.yaml").write_text(TOPOLOGY.format(name="a", head=goal))
    (tmp_path / "b.yaml").write_text(TOPOLOGY.format(name="b", head="mode: shadow\nservice: true\n"))
    catalog = HoldoutCatalog.from_folder(tmp_path)
    assert (catalog.global_holdout, catalog.salt) == (250, "2026-12")
    assert catalog.topologies == {
        "a": TopologyArms(holdout=1000, has_goal=True),
        "b": TopologyArms(shadow=True, service=True),
    }


def test_catalog_with_a_bare_number_is_refused(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text("holdout: {percent: 5}\n")
    with pytest.raises(TopologyError, match=r"holdout\.percent"):
        HoldoutCatalog.from_folder(tmp_path)


def test_the_shipped_catalog_loads() -> None:
    catalog = HoldoutCatalog.from_folder(Path(__file__).resolve().parents[2] / "topologies")
    assert "post_purchase_friction" in catalog.topologies
