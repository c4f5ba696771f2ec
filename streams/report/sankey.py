"""The journey Sankey's nodes and links, from each fired match's way in and way out.

A match contributes one path, left to right:

1. up to ``path_length`` events of its customer (type · channel), the last
   being the event that completed the match; a node is an event label at a
   position counted back from that event (``-2``, ``-1``, ``trigger event``),
   so the graph has no cycle however the labels repeat;
2. its topology;
3. its arm (``treated``, ``holdout_global``, ...);
4. the best status among its decisions (``emitted``, ``held_out``, ``blocked``, ...);
5. its goal: reached, missed, still open, or none, per arm group (treated
   or held out), so the goal flows of the two groups stay apart.

Only the most frequent event labels of each position are kept as nodes (the
rest become ``other``) so that a million paths still draw as a readable graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from streams.report import arms as A

TOP_LABELS = 10
OTHER = "other events"

Flow = tuple[str, tuple[int, ...] | None, str, str, str]  # topology, path, arm, best status, goal


def _arm_group(arm: str) -> str:
    return "held out" if arm in A.CONTROL_ARMS else arm


def build_sankey(flows: Sequence[Flow], labels: Sequence[str], *, top: int = TOP_LABELS) -> dict[str, Any]:
    """Nodes (label and stage) and links (source, target, value) of the flows."""
    width = max((len(p) for _, p, _, _, _ in flows if p), default=0)
    per_stage: list[Counter[int]] = [Counter() for _ in range(width)]
    for _, path, _, _, _ in flows:
        if path:
            offset = width - len(path)
            for i, label in enumerate(path):
                per_stage[offset + i][label] += 1
    kept = [{label for label, _ in c.most_common(top)} for c in per_stage]
    nodes: dict[tuple[str, str], int] = {}
    links: Counter[tuple[int, int]] = Counter()

    def node(stage: str, label: str) -> int:
        key = (stage, label)
        i = nodes.get(key)
        if i is None:
            i = nodes[key] = len(nodes)
        return i

    for topology, path, arm, best, goal in flows:
        chain: list[int] = []
        if path:
            offset = width - len(path)
            for i, label in enumerate(path):
                stage = offset + i
                name = labels[label] if label in kept[stage] else OTHER
                back = width - 1 - stage
                chain.append(node("trigger event" if back == 0 else f"-{back}", name))
        chain.append(node("topology", topology))
        chain.append(node("arm", arm))
        chain.append(node("decision", best))
        chain.append(node("goal", f"{goal} · {_arm_group(arm)}"))
        for a, b in pairwise(chain):
            links[(a, b)] += 1
    return {
        "nodes": [{"stage": stage, "label": label} for (stage, label) in nodes],
        "links": [{"source": a, "target": b, "value": n} for (a, b), n in sorted(links.items())],
    }
