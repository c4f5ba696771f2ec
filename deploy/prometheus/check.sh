#!/usr/bin/env bash
# Checks of the SRE deploy assets; installs nothing (`make test` calls it).
#
#   bash deploy/prometheus/check.sh
#
#  1. promtool check rules   deploy/prometheus/rules.yml
#  2. promtool test rules    deploy/prometheus/rules_test.yml  (every alert fires / stays quiet)
#  3. promtool check config  deploy/prometheus/prometheus.yml prometheus.compose.yml
#  4. the Grafana dashboard parses; its queries use only raw metrics of
#     docs/metrics.md (no recording rule, no deprecated name) and each returns
#     data from a synthetic scrape with no rule loaded; the rules use only
#     those metrics and their own recording rules
#  5. docker compose file and Kubernetes manifests parse and fit together
#
# Needs promtool (Debian: apt-get install -y prometheus; `make fetch-kafka`
# installs it too) and a Python with PyYAML: the project's .venv if it exists,
# else $TACTFUL_PYTHON, else python3. PROMTOOL=/path/to/promtool overrides.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEPLOY="$ROOT/deploy"

PROMTOOL="${PROMTOOL:-promtool}"
if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    echo "error: promtool not found (PROMTOOL=$PROMTOOL)." >&2
    echo "       Install it: apt-get install -y prometheus   (or: make fetch-kafka)" >&2
    exit 1
fi

if [[ -n "${TACTFUL_PYTHON:-}" ]]; then
    PYTHON="$TACTFUL_PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
    PYTHON="$ROOT/.venv/bin/python"
else
    PYTHON="python3"
fi
if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    echo "error: $PYTHON cannot import yaml (PyYAML): run 'make install' or apt-get install -y python3-yaml" >&2
    exit 1
fi

step() { printf '\n== %s\n' "$*"; }

step "promtool: $("$PROMTOOL" --version 2>&1 | head -n 1)"

step "rules: syntax"
"$PROMTOOL" check rules "$DEPLOY/prometheus/rules.yml"

step "rules: unit tests"
"$PROMTOOL" test rules "$DEPLOY/prometheus/rules_test.yml"

step "scrape configs"
"$PROMTOOL" check config "$DEPLOY/prometheus/prometheus.yml" "$DEPLOY/prometheus/prometheus.compose.yml"

step "grafana: dashboard JSON and provisioning"
"$PYTHON" -m json.tool "$DEPLOY/grafana/tactful.json" >/dev/null
for f in "$DEPLOY"/grafana/provisioning/*/*.yml; do
    "$PYTHON" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"
done
echo "tactful.json and provisioning parse"

step "grafana: queries read raw documented metrics; rules use those and recording rules"
"$PYTHON" "$DEPLOY/grafana/check_queries.py" --promtool "$PROMTOOL"

step "docker compose"
"$PYTHON" "$DEPLOY/compose/check_compose.py"

step "kubernetes manifests"
"$PYTHON" "$DEPLOY/k8s/check_manifests.py"

printf '\nall deploy checks passed\n'
