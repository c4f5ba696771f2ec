#!/usr/bin/env python3
"""Check deploy/compose/docker-compose.yml without a Docker engine.

    python3 deploy/compose/check_compose.py

The file parses as YAML (anchors and merge keys resolved), and: every service
has an image or a build whose context and Dockerfile exist; every bind-mounted
host path exists; named volumes are declared; depends_on names services; the
workers carry the TACTFUL_* settings they need and distinct host ports; the
generator runs `tactful feed`; Prometheus mounts the config and rules of
deploy/prometheus and Grafana the provisioning and dashboard of deploy/grafana,
where the provisioned dashboard provider reads it and the provisioned data
source (uid `prometheus`) points at the compose Prometheus.

Exits 1 listing every problem. Needs PyYAML. (The full compose schema is what
`docker compose config` checks on a machine with the compose plugin.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
COMPOSE = HERE / "docker-compose.yml"
WORKERS = ("worker-1", "worker-2")
WORKER_ENV = ("TACTFUL_BOOTSTRAP_SERVERS", "TACTFUL_REDIS_URL", "TACTFUL_WEB_PORT", "TACTFUL_TOPOLOGIES")
REQUIRED_SERVICES = ("kafka", "redis", "prometheus", "grafana", "generator", *WORKERS)


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def short_volume(v: Any) -> tuple[str, str]:
    if isinstance(v, dict):
        return str(v.get("source", "")), str(v.get("target", ""))
    parts = str(v).split(":")
    return (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])


def main() -> int:
    problems: list[str] = []
    try:
        doc = yaml.safe_load(COMPOSE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        print(f"FAIL {COMPOSE.name}: {exc}")
        return 1
    services: dict[str, dict[str, Any]] = doc.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())

    for name in REQUIRED_SERVICES:
        if name not in services:
            problems.append(f"no service {name}")

    mounts: dict[str, dict[str, str]] = {}
    for name, svc in services.items():
        if not svc.get("image") and not svc.get("build"):
            problems.append(f"{name}: neither image nor build")
        build = svc.get("build")
        if build:
            ctx = HERE / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not ctx.is_dir():
                problems.append(f"{name}: build context {ctx} does not exist")
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        mounts[name] = {}
        for v in svc.get("volumes") or []:
            source, target = short_volume(v)
            mounts[name][target] = source
            if source.startswith((".", "/")):
                if not (HERE / source).exists():
                    problems.append(f"{name}: bind mount source {source} does not exist")
            elif source and source not in declared_volumes:
                problems.append(f"{name}: named volume {source} is not declared under volumes:")
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"{name}: depends_on {dep}, which is no service")

    host_ports: dict[str, str] = {}
    for name in WORKERS:
        svc = services.get(name, {})
        env = env_of(svc)
        for var in WORKER_ENV:
            if not env.get(var):
                problems.append(f"{name}: no {var}")
        if not svc.get("healthcheck"):
            problems.append(f"{name}: no healthcheck")
        for p in svc.get("ports") or []:
            host = str(p).rsplit(":", 1)[0]
            if host in host_ports:
                problems.append(f"{name}: host port {host} already published by {host_ports[host]}")
            host_ports[host] = name
        state = [t for t, s in mounts.get(name, {}).items() if s in declared_volumes]
        if not state:
            problems.append(f"{name}: no named volume for its state stores")

    gen = services.get("generator", {})
    if list(gen.get("entrypoint") or []) != ["tactful", "feed"]:
        problems.append(f"generator: entrypoint is {gen.get('entrypoint')!r}, expected ['tactful', 'feed']")
    if str(gen.get("restart", "no")) != "no":
        problems.append("generator: a one-shot service must not restart")

    prom = mounts.get("prometheus", {})
    for target, source_name in (
        ("/etc/prometheus/prometheus.yml", "prometheus.compose.yml"),
        ("/etc/prometheus/rules.yml", "rules.yml"),
    ):
        if Path(prom.get(target, "")).name != source_name:
            problems.append(f"prometheus: {target} should mount deploy/prometheus/{source_name}")
    graf = mounts.get("grafana", {})
    if Path(graf.get("/etc/grafana/provisioning", "")).name != "provisioning":
        problems.append("grafana: /etc/grafana/provisioning should mount deploy/grafana/provisioning")
    dash_targets = [t for t, s in graf.items() if Path(s).name == "tactful.json"]
    if not dash_targets:
        problems.append("grafana: the dashboard deploy/grafana/tactful.json is not mounted")
    provisioning = HERE.parent / "grafana" / "provisioning"
    providers = [
        p
        for f in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for p in (yaml.safe_load(f.read_text()) or {}).get("providers", [])
    ]
    paths = {str((p.get("options") or {}).get("path", "")) for p in providers}
    for t in dash_targets:
        if str(Path(t).parent) not in paths:
            problems.append(f"grafana: dashboard mounted at {t}, but no dashboard provider reads {Path(t).parent}")
    sources = [
        d
        for f in sorted((provisioning / "datasources").glob("*.y*ml"))
        for d in (yaml.safe_load(f.read_text()) or {}).get("datasources", [])
    ]
    prom_ds = [d for d in sources if d.get("uid") == "prometheus" and d.get("type") == "prometheus"]
    if not prom_ds:
        problems.append("grafana provisioning: no prometheus data source with uid 'prometheus'")
    elif "//prometheus:9090" not in str(prom_ds[0].get("url", "")):
        problems.append(f"grafana provisioning: data source url {prom_ds[0].get('url')} is not the compose service")

    print(f"{COMPOSE.name}: {len(services)} services checked ({', '.join(services)})")
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
