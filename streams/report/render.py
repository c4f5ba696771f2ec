"""Rendering the report data: terminal tables (rich), JSON, and one self-contained HTML page (plotly).

Every renderer takes the data :meth:`Aggregator.result` returns and nothing
else, so the three outputs always agree. The HTML page inlines plotly.js (no
``<script src>``, no font or map requests): it opens from a file with no
network. plotly is imported only here, only for ``--html``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from streams.errors import ConfigError


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _with_interval(
    value: float | None, pair: Sequence[float] | None, *, scale: float = 100, signed: bool = False
) -> str:
    """``20.8% (18.8 to 23.0)``-style cells: the figure, then its 95% interval in the same unit."""
    if value is None and pair is None:
        return "-"
    sign = "+" if signed else ""
    text = "-" if value is None else f"{value * scale:{sign}.1f}"
    if pair is not None:
        text += f" ({pair[0] * scale:{sign}.1f} to {pair[1] * scale:{sign}.1f})"
    return text


def to_json(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def to_terminal(data: dict[str, Any], console: Console) -> None:
    """Readable tables: per topology, per channel, and the one customer's timeline."""
    inputs = data["inputs"]
    touch = inputs["touchpoints"]
    console.print(
        f"[bold]tactful report[/bold]: {inputs['audit_records']:,} audit records, {inputs['matches']:,} fired matches"
        + (f", {touch:,} touchpoints" if touch is not None else " (no touchpoints: no funnel or paths)")
    )
    arms = Table(title="Fired matches by arm; goal rate per arm, % (95% Wilson interval)", title_justify="left")
    for col in ("topology", "arm", "matches", "reached", "missed", "open", "goal rate, %"):
        arms.add_column(col, justify="left" if col in ("topology", "arm") else "right")
    uplift = Table(
        title="Uplift of treated over control (the held-out arms pooled), 95% intervals", title_justify="left"
    )
    for col in ("topology", "uplift, points", "relative, %", "incremental goals", "verdict"):
        uplift.add_column(col, justify="left" if col in ("topology", "verdict") else "right")
    for t in data["topologies"]:
        goal = t["goal"]
        first = True
        for arm in list(t["matches"]) or ["-"]:
            rate = goal["arms"].get(arm) if goal else None
            arms.add_row(
                t["topology"] if first else "",
                arm,
                f"{t['matches'].get(arm, 0):,}",
                *((f"{rate['reached']:,}", f"{rate['missed']:,}", f"{rate['open']:,}") if rate else ("-", "-", "-")),
                _with_interval(rate["rate"], rate["interval"]) if rate else "no goal",
            )
            first = False
        if goal:
            u = goal["uplift"]
            uplift.add_row(
                t["topology"],
                _with_interval(u["absolute"], u["absolute_interval"], signed=True),
                _with_interval(u["relative"], u["relative_interval"], signed=True),
                _with_interval(u["incremental_goals"], u["incremental_interval"], scale=1, signed=True),
                u["verdict"],
            )
    console.print(arms)
    if uplift.row_count:
        console.print(uplift)
    else:
        console.print("No topology has goal records: no uplift to show (contract 7.4: give a topology a goal).")
    decisions = Table(title="Decisions by status and cause", title_justify="left")
    for col in ("topology", "kind", "status", "cause", "count"):
        decisions.add_column(col, justify="right" if col == "count" else "left")
    for t in data["topologies"]:
        first = True
        for d in t["decisions"]:
            decisions.add_row(
                t["topology"] if first else "", d["kind"], d["status"], d["cause"] or "", f"{d['count']:,}"
            )
            first = False
    console.print(decisions)
    if data["channels"]:
        funnel = Table(title="Outcome funnel per channel (decisions reported by channels)", title_justify="left")
        stages = ("sent", "delivered", "opened", "clicked", "converted", "complained", "unsubscribed", "failed")
        funnel.add_column("channel")
        for s in stages:
            funnel.add_column(s, justify="right")
        for row in data["channels"]:
            funnel.add_row(row["channel"], *(_count_of(row, s) for s in stages))
        console.print(funnel)
    if data["customer"] is not None:
        _customer_terminal(data["customer"], console)


def _count_of(row: dict[str, Any], stage: str) -> str:
    n = row[stage]
    base = row["sent"]
    if stage == "sent" or not base:
        return f"{n:,}"
    return f"{n:,} ({n / base * 100:.0f}%)"


def _customer_terminal(c: dict[str, Any], console: Console) -> None:
    if not c["matches"]:
        console.print(f"No topology fired for {c['customer_id']}.")
    matches = Table(title=f"Fired matches of {c['customer_id']}", title_justify="left")
    for col in ("topology", "arm", "decision", "goal", "evidence"):
        matches.add_column(col)
    for m in c["matches"]:
        matches.add_row(m["topology"], m["arm"], m["decision"], m["goal"], ", ".join(m["evidence"]))
    if c["matches"]:
        console.print(matches)
    timeline = Table(title=f"Timeline of {c['customer_id']}: events, decisions and goals", title_justify="left")
    for col in ("at", "what", "detail", "status", "cause"):
        timeline.add_column(col)
    for e in c["timeline"]:
        timeline.add_row(e["at"], e["what"], describe(e), e.get("status", ""), e.get("cause") or "")
    console.print(timeline)


def describe(e: dict[str, Any]) -> str:
    """One line for a timeline entry."""
    if e["what"] == "event":
        where = f" on {e['channel']}" if e.get("channel") else ""
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(e["attributes"].items()))
        return f"{e['type']}{where} ({e['event_id']}){' ' + attrs if attrs else ''}"
    if e["what"] == "goal":
        return f"GOAL of {e['topology']} (evidence {', '.join(e['evidence'])})"
    what = e["kind"]
    if e.get("action"):
        what += f" {e['action']}"
    return f"{what} on {e['channel']} by {e['topology']}" + (f" for {e['category']}" if e.get("category") else "")


# --- HTML --------------------------------------------------------------------------------------


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ConfigError("--html needs plotly: pip install 'tactful[report]'") from exc
    return go


def _sankey_figure(go: Any, sankey: dict[str, Any], title: str) -> Any:
    nodes = sankey["nodes"]
    return go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [f"{n['label']}" for n in nodes],
                "customdata": [n["stage"] for n in nodes],
                "hovertemplate": "%{label}<br>stage %{customdata}<br>%{value:,} matches<extra></extra>",
                "pad": 12,
                "thickness": 14,
            },
            link={
                "source": [link["source"] for link in sankey["links"]],
                "target": [link["target"] for link in sankey["links"]],
                "value": [link["value"] for link in sankey["links"]],
            },
        ),
        layout={"title": {"text": title}, "height": 560, "margin": {"l": 10, "r": 10, "t": 50, "b": 10}},
    )


def _rates_figure(go: Any, topologies: list[dict[str, Any]]) -> Any | None:
    with_goal = [t for t in topologies if t["goal"]]
    if not with_goal:
        return None
    fig = go.Figure()
    for group in ("treated", "control"):
        xs, ys, lo, hi = [], [], [], []
        for t in with_goal:
            r = t["goal"]["arms"].get("treated") if group == "treated" else t["goal"]["control"]
            if r is None or r["rate"] is None:
                continue
            xs.append(t["topology"])
            ys.append(r["rate"] * 100)
            lo.append((r["rate"] - r["interval"][0]) * 100)
            hi.append((r["interval"][1] - r["rate"]) * 100)
        fig.add_trace(
            go.Bar(
                name=group,
                x=xs,
                y=ys,
                error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
            )
        )
    fig.update_layout(
        title={"text": "Goal rate per topology, treated against control (95% interval)"},
        barmode="group",
        yaxis={"title": {"text": "goal rate, %"}},
        height=420,
    )
    return fig


def _status_figure(go: Any, topologies: list[dict[str, Any]]) -> Any | None:
    """Decisions per topology, stacked by status: how much of what fired was held out, blocked, outranked."""
    if not topologies:
        return None
    names = [t["topology"] for t in topologies]
    statuses = sorted({d["status"] for t in topologies for d in t["decisions"]}, key=_status_order)
    fig = go.Figure()
    for status in statuses:
        counts = [sum(d["count"] for d in t["decisions"] if d["status"] == status) for t in topologies]
        fig.add_trace(go.Bar(name=status, x=names, y=counts))
    fig.update_layout(
        title={"text": "Decisions per topology by status"},
        barmode="stack",
        height=380,
        yaxis={"title": {"text": "decisions"}},
    )
    return fig


def _status_order(status: str) -> int:
    from streams.report.aggregate import STATUS_ORDER

    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _funnel_figure(go: Any, channels: list[dict[str, Any]]) -> Any | None:
    if not channels:
        return None
    stages = ("sent", "delivered", "opened", "clicked", "converted")
    fig = go.Figure()
    for row in channels:
        fig.add_trace(go.Funnel(name=row["channel"], y=list(stages), x=[row[s] for s in stages]))
    fig.update_layout(title={"text": "Outcome funnel per channel"}, height=420)
    return fig


def to_html(data: dict[str, Any], *, title: str = "tactful report") -> str:
    """One self-contained page: plotly.js inlined once, then every chart."""
    go = _plotly()
    from plotly.offline import get_plotlyjs

    def chart(name: str, fig: Any) -> str:
        return str(
            fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                include_mathjax=False,
                div_id=name,
                config={"displaylogo": False, "responsive": True},
            )
        )

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}.better{color:#137333;font-weight:bold}"
        ".worse{color:#b3261e;font-weight:bold}p.note{color:#555}#timeline td{text-align:left}</style>",
        # Inlined, so the page needs no network: no CDN, no MathJax.
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _inputs_html(data["inputs"]),
        _summary_html(data),
    ]
    rates = _rates_figure(go, data["topologies"])
    if rates is not None:
        parts.append(chart("rates", rates))
    statuses = _status_figure(go, data["topologies"])
    if statuses is not None:
        parts.append(chart("statuses", statuses))
    parts.append("<h2>Outcomes reported by channels</h2>")
    funnel = _funnel_figure(go, data["channels"])
    if funnel is not None:
        parts.append(chart("funnel", funnel))
        parts.append(_funnel_html(data["channels"]))
    else:
        parts.append("<p class='note'>No emitted engagement and no channel outcome in the input.</p>")
    customer = data["customer"]
    if customer is not None:
        who = html.escape(customer["customer_id"])
        parts.append(f"<h2>One customer: {who}</h2>")
        if customer["sankey"]["links"]:
            parts.append(chart("sankey-customer", _sankey_figure(go, customer["sankey"], f"Journey of {who}")))
        else:
            parts.append(f"<p class='note'>No topology fired for {who}.</p>")
        parts.append(_timeline_html(customer))
    parts.append(
        "<h2>Journeys</h2><p class='note'>Left to right: the events (type · channel) that led to each fired "
        "match, the last one completing it; the topology; the match's arm; the best status among its decisions; "
        "whether its goal was reached. Widths count matches.</p>"
    )
    parts.append(chart("sankey-all", _sankey_figure(go, data["sankey"]["all"], "Journeys into every topology")))
    for name, sankey in data["sankey"]["topologies"].items():
        parts.append(chart(f"sankey-{name}", _sankey_figure(go, sankey, f"Journeys into {name}")))
    parts.append("</body></html>")
    return "\n".join(parts)


def _inputs_html(inputs: dict[str, Any]) -> str:
    touch = inputs["touchpoints"]
    read = f"{inputs['audit_records']:,} audit records, {inputs['matches']:,} fired matches" + (
        f", {touch:,} touchpoints" if touch is not None else " (no touchpoints: no funnel or paths)"
    )
    return f"<p class='note'>{html.escape(read)}</p>"


def _summary_html(data: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for t in data["topologies"]:
        g = t["goal"]
        matches = ", ".join(f"{arm} {n:,}" for arm, n in t["matches"].items())
        if g is None:
            rows.append(f"<tr><td>{e(t['topology'])}</td><td>{e(matches)}</td><td colspan='6'>no goal</td></tr>")
            continue
        u = g["uplift"]
        treated = g["arms"].get("treated")
        verdict = u["verdict"]
        css = "better" if verdict == "better" else "worse" if verdict == "worse" else ""
        cells = (
            _with_interval(treated["rate"], treated["interval"]) if treated else "-",
            _with_interval(g["control"]["rate"], g["control"]["interval"]),
            _with_interval(u["absolute"], u["absolute_interval"], signed=True),
            _with_interval(u["relative"], u["relative_interval"], signed=True),
            _with_interval(u["incremental_goals"], u["incremental_interval"], scale=1, signed=True),
        )
        rows.append(
            f"<tr><td>{e(t['topology'])}</td><td>{e(matches)}</td>"
            + "".join(f"<td>{e(c)}</td>" for c in cells)
            + f"<td class='{css}'>{e(verdict)}</td></tr>"
        )
    head = (
        "<tr><th>topology</th><th>fired matches by arm</th><th>treated goal rate, %</th>"
        "<th>control goal rate, %</th><th>uplift, points</th><th>relative uplift, %</th>"
        "<th>incremental goals</th><th>verdict</th></tr>"
    )
    note = (
        "<p>Goal rates count matches whose goal was reached or missed; control is the held-out arms pooled. "
        "In brackets: 95% intervals (Wilson for rates, Newcombe for the uplift, log ratio for the relative "
        "uplift). <b>better</b>/<b>worse</b>: the uplift's interval lies above/below zero.</p>"
    )
    return f"<h2>Uplift per topology</h2><table id='uplift'>{head}{''.join(rows)}</table>{note}"


def _funnel_html(channels: list[dict[str, Any]]) -> str:
    if not channels:
        return ""
    stages = ("sent", "delivered", "opened", "clicked", "converted", "complained", "unsubscribed", "failed")
    head = "<tr><th>channel</th>" + "".join(f"<th>{s}</th>" for s in stages) + "</tr>"
    rows = "".join(
        f"<tr><td>{html.escape(r['channel'])}</td>" + "".join(f"<td>{_count_of(r, s)}</td>" for s in stages) + "</tr>"
        for r in channels
    )
    return f"<table id='funnel-table'>{head}{rows}</table>"


def _timeline_html(c: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(x['at'])}</td><td>{e(x['what'])}</td><td>{e(describe(x))}</td>"
        f"<td>{e(x.get('status', ''))}</td><td>{e(x.get('cause') or '')}</td></tr>"
        for x in c["timeline"]
    )
    head = "<tr><th>at</th><th>what</th><th>detail</th><th>status</th><th>cause</th></tr>"
    return f"<h3>Timeline: events, decisions and goals</h3><table id='timeline'>{head}{rows}</table>"
