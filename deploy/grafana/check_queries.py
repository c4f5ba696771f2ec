#!/usr/bin/env python3
"""Check that the Grafana dashboard and the Prometheus rules only query what exists.

    python3 deploy/grafana/check_queries.py [--promtool PATH]

Checks, and exits 1 listing every problem:

* ``deploy/grafana/tactful.json`` parses as JSON, has unique panel ids, and every
  panel and query uses the data source variable ``${DS_PROMETHEUS}`` (or the
  provisioned uid ``prometheus``);
* every metric name in a dashboard query (panel targets, annotations and template variables)
  is a metric from ``docs/metrics.md`` (histograms with their ``_bucket``,
  ``_sum`` and ``_count`` series) or Prometheus' own ``up``: never a recording
  rule, so that the dashboard works against a Prometheus without ``rules.yml``;
* every metric name in the rules' own expressions is one of those, or a
  recording rule of ``deploy/prometheus/rules.yml``;
* neither uses a name that ``docs/metrics.md`` lists under "Deprecated names";
* every label matched on a documented metric is one of its documented labels
  (or ``job``, ``instance``, ``le`` on a histogram bucket), and every label
  matched on a recording rule is one its name's level or static labels give;
* every alert has a ``severity`` label, a ``for`` duration, ``summary``,
  ``description`` and ``runbook`` annotations, a runbook that is a heading of
  ``deploy/README.md``, and in ``rules_test.yml`` at least one test where it
  fires and one where it stays quiet;
* with ``--promtool``, every dashboard expression (Grafana variables replaced by
  sample values) also parses as PromQL, by ``promtool check rules`` on a
  temporary rule file; and returns data when evaluated, by ``promtool test
  rules`` with no rule loaded, over a synthetic scrape of every documented
  metric (one worker, 20 minutes): the dashboard needs only the raw metrics.

Needs PyYAML (a tactful dependency; Debian: python3-yaml).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRICS_MD = ROOT / "docs" / "metrics.md"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tactful.json"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yml"
README = ROOT / "deploy" / "README.md"

ALLOWED_DATASOURCE_UIDS = {"${DS_PROMETHEUS}", "$DS_PROMETHEUS", "prometheus"}
BUILTIN = {"up": {"job", "instance"}}
ALWAYS_LABELS = {"job", "instance"}
# Grafana variables and the sample values they get for parsing.
VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${job}": "tactful",
    "$job": "tactful",
    "${instance}": ".*",
    "$instance": ".*",
}
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*)\)\s*$", re.S)


def deprecated_metrics() -> set[str]:
    """Old names still exported for a while, from the "Deprecated names" section of docs/metrics.md."""
    names: set[str] = set()
    section = ""
    for line in METRICS_MD.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip().lower()
        elif section.startswith("deprecated") and line.startswith("| `tactful_"):
            names.add(line.strip("| ").split("`")[1])
    return names


def documented_metrics() -> dict[str, set[str]]:
    """Metric name -> allowed labels, from the tables in docs/metrics.md (deprecated names left out)."""
    metrics: dict[str, set[str]] = {}
    section = ""
    for line in METRICS_MD.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip().lower()
        if section.startswith("deprecated"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`tactful_"):
            continue
        name, kind = cells[0].strip("`"), cells[1]
        labels = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[2])) | ALWAYS_LABELS
        if kind == "histogram":
            metrics[f"{name}_bucket"] = labels | {"le"}
            metrics[f"{name}_sum"] = labels
            metrics[f"{name}_count"] = labels
        else:
            metrics[name] = labels
    if not metrics:
        sys.exit(f"error: no metric found in the table of {METRICS_MD}")
    return metrics


def recording_rules() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Recording rule name -> labels it carries; and (rule name, expr) of every rule."""
    records: dict[str, set[str]] = {}
    exprs: list[tuple[str, str]] = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            exprs.append((name, str(rule["expr"])))
            if "record" in rule:
                level = rule["record"].split(":")[0]
                labels = set(level.split("_")) | set((rule.get("labels") or {}).keys())
                if "instance" in labels:
                    labels.add("job")
                records.setdefault(rule["record"], set()).update(labels)
    return records, exprs


def strip_strings(expr: str) -> str:
    return re.sub(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`", '""', expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (a light tokenizer, not a full parser)."""
    names: set[str] = set()
    for m in re.finditer(r"__name__\s*(=~|=)\s*\"([^\"]*)\"", expr):
        names.update(part for part in m.group(2).split("|") if part)
    text = strip_strings(expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = GROUPING.sub(" ", text)  # by (...), on (...), ...
    text = re.sub(r"(?<![A-Za-z0-9_:.])\d[\w.]*", " ", text)  # numbers, durations
    for m in IDENT.finditer(text):
        word = m.group(0)
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # function, aggregation or keyword
        names.add(word)
    return names


def matched_labels(expr: str) -> list[tuple[str, str]]:
    """(metric name, label) for every matcher attached to a named selector."""
    out = []
    for m in SELECTOR.finditer(expr):
        if m.group(1):
            out += [(m.group(1), lm.group(1)) for lm in MATCHER.finditer(m.group(2))]
    return out


def substitute(expr: str) -> str:
    for var in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(var, VARIABLES[var])
    return expr


def dashboard_queries(dash: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(where, expr) for every query; and problems with data sources / ids."""
    queries: list[tuple[str, str]] = []
    problems: list[str] = []
    seen_ids: set[object] = set()

    def ds_ok(where: str, ds: object) -> None:
        if ds is None:
            return
        uid = ds.get("uid") if isinstance(ds, dict) else ds
        if uid not in ALLOWED_DATASOURCE_UIDS:
            problems.append(f"{where}: data source {uid!r} is not ${{DS_PROMETHEUS}} or 'prometheus'")

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            where = f"panel {p.get('id')} {p.get('title')!r}"
            if p.get("id") in seen_ids:
                problems.append(f"{where}: duplicate panel id")
            seen_ids.add(p.get("id"))
            if "gridPos" not in p:
                problems.append(f"{where}: no gridPos")
            if p.get("type") != "row":
                ds_ok(where, p.get("datasource"))
            for t in p.get("targets", []):
                ds_ok(f"{where} target {t.get('refId')}", t.get("datasource"))
                if not t.get("expr"):
                    problems.append(f"{where} target {t.get('refId')}: empty expr")
                    continue
                queries.append((f"{where} target {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    # Annotations from Prometheus queries (catalog deploys) are queries too.
    for ann in dash.get("annotations", {}).get("list", []):
        if "expr" in ann:
            where = f"annotation {ann.get('name')!r}"
            ds_ok(where, ann.get("datasource"))
            queries.append((where, ann["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        where = f"variable ${var.get('name')}"
        ds_ok(where, var.get("datasource"))
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        lv = LABEL_VALUES.match(q or "")
        if lv:
            args = lv.group(1)
            # label_values(selector, label) or label_values(label)
            q = args.rsplit(",", 1)[0] if "," in args else ""
        if q:
            queries.append((where, q))
    return queries, problems


def check_alerts() -> list[str]:
    """Annotations, runbooks and test coverage of every alert."""
    problems: list[str] = []
    anchors = {
        re.sub(r"[^a-z0-9_ -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in README.read_text().splitlines()
        if line.startswith("#")
    }
    fires: set[str] = set()
    quiet: set[str] = set()
    for test in yaml.safe_load(RULES_TEST.read_text()).get("tests", []):
        for case in test.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            name = rule["alert"]
            ann = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook"):
                if not ann.get(key):
                    problems.append(f"alert {name}: no {key} annotation")
            if not (rule.get("labels") or {}).get("severity"):
                problems.append(f"alert {name}: no severity label")
            if not rule.get("for"):
                problems.append(f"alert {name}: no `for` duration")
            runbook = str(ann.get("runbook", ""))
            if not runbook.startswith("deploy/README.md#") or runbook.split("#", 1)[1] not in anchors:
                problems.append(f"alert {name}: runbook {runbook!r} is no heading of deploy/README.md")
            if name not in fires:
                problems.append(f"alert {name}: no test in rules_test.yml where it fires")
            if name not in quiet:
                problems.append(f"alert {name}: no test in rules_test.yml where it stays quiet")
    return problems


def promtool_parse(promtool: str, exprs: list[tuple[str, str]]) -> list[str]:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query:{i}", "expr": substitute(e)} for i, (_, e) in enumerate(exprs)],
            }
        ]
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
        path = f.name
    try:
        proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        Path(path).unlink()
    if proc.returncode == 0:
        return []
    return [f"promtool cannot parse a dashboard query:\n{proc.stdout}{proc.stderr}"]


# Label values for the synthetic scrape: the ones dashboard queries select on.
SAMPLE_LABELS = {
    "type": "purchase",
    "reason": "late",
    "status": "emitted",
    "kind": "SUPPRESS",
    "channel": "email",
    "topology": "abandoned_cart_reminder",
    "cause": "redis",
    "partition": "0",
    "op": "set",
    "arm": "treated",
    "outcome": "reached",
}
# An info metric's label that changes when a deploy comes in force: the old value for
# minutes 0-18, the new one from minute 20 on (`_x20` is 20 missing samples), so a
# "a new value appeared" query finds one at the checked time, 20m.
CHANGING_LABELS = {"hash": (("sha256:old", "1x18"), ("sha256:new", "_x20 1x10"))}


def synthetic_series(metrics: dict[str, set[str]]) -> list[dict[str, str]]:
    """promtool input series: every documented metric of one worker, moving for 30 minutes."""
    series = [{"series": 'up{job="tactful", instance="127.0.0.1:6066"}', "values": "1x30"}]
    for name, labels in sorted(metrics.items()):
        pairs = {"job": "tactful", "instance": "127.0.0.1:6066"}
        pairs |= {k: SAMPLE_LABELS[k] for k in sorted(labels - ALWAYS_LABELS - {"le"}) if k in SAMPLE_LABELS}
        changing = sorted(labels & CHANGING_LABELS.keys())
        if changing:
            for value, values in CHANGING_LABELS[changing[0]]:
                text = ", ".join(f'{k}="{v}"' for k, v in (pairs | {changing[0]: value}).items())
                series.append({"series": f"{name}{{{text}}}", "values": values})
            continue
        moving = name.endswith(("_total", "_sum", "_count"))
        les = ["0.1", "1.0", "+Inf"] if name.endswith("_bucket") else [None]
        for i, le in enumerate(les):
            sel = pairs | ({"le": le} if le else {})
            text = ", ".join(f'{k}="{v}"' for k, v in sel.items())
            values = f"0+{5 * (i + 1) if i < 2 else 10}x30" if le else ("0+10x30" if moving else "5x30")
            series.append({"series": f"{name}{{{text}}}", "values": values})
    return series


def promtool_eval(promtool: str, exprs: list[tuple[str, str]], metrics: dict[str, set[str]]) -> list[str]:
    """Evaluate every query with no recording rule loaded; each must return data."""
    tests = [
        {
            "name": f"{where} returns data from raw metrics",
            "interval": "1m",
            "input_series": synthetic_series(metrics),
            "promql_expr_test": [
                {
                    "expr": f"(count({substitute(expr)}) > bool 0) or vector(0)",
                    "eval_time": "20m",
                    "exp_samples": [{"labels": "{}", "value": 1}],
                }
            ],
        }
        for where, expr in exprs
    ]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "none.yml").write_text("groups: []\n")
        test = Path(tmp) / "dashboard_test.yml"
        test.write_text(yaml.safe_dump({"rule_files": ["none.yml"], "evaluation_interval": "1m", "tests": tests}))
        proc = subprocess.run([promtool, "test", "rules", str(test)], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    failed = re.findall(r"FAILED:\s*\n\s*(?:expr|    expr)?.*", proc.stdout + proc.stderr)
    detail = "\n".join(failed) if failed else proc.stdout + proc.stderr
    return [f"a dashboard query returns no data from the raw metrics (no recording rule loaded):\n{detail}"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--promtool", help="also parse every dashboard query with this promtool")
    args = ap.parse_args()

    metrics = documented_metrics()
    deprecated = deprecated_metrics()
    records, rule_exprs = recording_rules()
    raw: dict[str, set[str]] = {**BUILTIN, **metrics}
    known: dict[str, set[str]] = {**raw, **records}
    problems: list[str] = []

    try:
        dash = json.loads(DASHBOARD.read_text())
    except (OSError, ValueError) as exc:
        print(f"FAIL {DASHBOARD}: {exc}")
        return 1
    queries, problems = dashboard_queries(dash)
    if not queries:
        problems.append("the dashboard has no query")

    def check(where: str, expr: str, allowed: dict[str, set[str]]) -> None:
        for name in sorted(metric_names(expr)):
            if name in deprecated:
                problems.append(f"{where}: deprecated name {name!r} (docs/metrics.md) in: {' '.join(expr.split())}")
            elif name in records and name not in allowed:
                problems.append(
                    f"{where}: recording rule {name!r}: the dashboard reads raw metrics only, "
                    f"so that it works without rules.yml loaded"
                )
            elif name not in allowed:
                problems.append(f"{where}: unknown metric {name!r} in: {' '.join(expr.split())}")
        for name, label in matched_labels(expr):
            if name in allowed and label not in allowed[name]:
                problems.append(f"{where}: {name} has no label {label!r} (has {sorted(allowed[name])})")

    for where, expr in queries:
        check(f"dashboard {where}", expr, raw)
    for name, expr in rule_exprs:
        check(f"rules.yml {name}", expr, known)
    problems += check_alerts()
    if args.promtool:
        parse = promtool_parse(args.promtool, queries)
        problems += parse or promtool_eval(args.promtool, queries, metrics)

    used = set().union(*(metric_names(e) for _, e in queries))
    alerts = sum(1 for name, _ in rule_exprs if name not in records)
    print(
        f"{len(queries)} dashboard queries and {len(rule_exprs)} rule expressions checked "
        f"against {len(metrics)} documented series ({len(deprecated)} deprecated names refused) "
        f"and {len(records)} recording rules (refused in the dashboard); "
        f"the dashboard uses {len(used)} distinct series; {alerts} alerts checked for annotations, "
        f"runbook sections and firing and quiet tests"
    )
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
