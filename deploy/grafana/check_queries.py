#!/usr/bin/env python3
"""Check that the Grafana dashboard and the Prometheus rules only query what exists.

    python3 deploy/grafana/check_queries.py [--promtool PATH]

Checks, and exits 1 listing every problem:

* ``deploy/grafana/tactful.json`` parses as JSON, has unique panel ids, and every
  panel and query uses the data source variable ``${DS_PROMETHEUS}`` (or the
  provisioned uid ``prometheus``);
* every metric name in a dashboard query (panel targets and template variables)
  is a metric from ``docs/metrics.md`` (histograms with their ``_bucket``,
  ``_sum`` and ``_count`` series), a recording rule of
  ``deploy/prometheus/rules.yml``, or Prometheus' own ``up``;
* every metric name in the rules' own expressions is one of those too;
* every label matched on a documented metric is one of its documented labels
  (or ``job``, ``instance``, ``le`` on a histogram bucket), and every label
  matched on a recording rule is one its name's level or static labels give;
* every alert has a ``severity`` label, a ``for`` duration, ``summary``,
  ``description`` and ``runbook`` annotations, a runbook that is a heading of
  ``deploy/README.md``, and in ``rules_test.yml`` at least one test where it
  fires and one where it stays quiet;
* with ``--promtool``, every dashboard expression (Grafana variables replaced by
  sample values) also parses as PromQL, by ``promtool check rules`` on a
  temporary rule file.

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


def documented_metrics() -> dict[str, set[str]]:
    """Metric name -> allowed labels, from the table in docs/metrics.md."""
    metrics: dict[str, set[str]] = {}
    for line in METRICS_MD.read_text().splitlines():
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--promtool", help="also parse every dashboard query with this promtool")
    args = ap.parse_args()

    metrics = documented_metrics()
    records, rule_exprs = recording_rules()
    known: dict[str, set[str]] = {**BUILTIN, **metrics, **records}
    problems: list[str] = []

    try:
        dash = json.loads(DASHBOARD.read_text())
    except (OSError, ValueError) as exc:
        print(f"FAIL {DASHBOARD}: {exc}")
        return 1
    queries, problems = dashboard_queries(dash)
    if not queries:
        problems.append("the dashboard has no query")

    def check(where: str, expr: str) -> None:
        for name in sorted(metric_names(expr)):
            if name not in known:
                problems.append(f"{where}: unknown metric {name!r} in: {' '.join(expr.split())}")
        for name, label in matched_labels(expr):
            if name in known and label not in known[name]:
                problems.append(f"{where}: {name} has no label {label!r} (has {sorted(known[name])})")

    for where, expr in queries:
        check(f"dashboard {where}", expr)
    for name, expr in rule_exprs:
        check(f"rules.yml {name}", expr)
    problems += check_alerts()
    if args.promtool:
        problems += promtool_parse(args.promtool, queries)

    used = set().union(*(metric_names(e) for _, e in queries))
    alerts = sum(1 for name, _ in rule_exprs if name not in records)
    print(
        f"{len(queries)} dashboard queries and {len(rule_exprs)} rule expressions checked "
        f"against {len(metrics)} documented series and {len(records)} recording rules; "
        f"the dashboard uses {len(used)} distinct series; {alerts} alerts checked for annotations, "
        f"runbook sections and firing and quiet tests"
    )
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
