#!/usr/bin/env python3
"""Check the Kubernetes manifests in deploy/k8s without a cluster.

    python3 deploy/k8s/check_manifests.py

Every file parses as YAML and every document has apiVersion, kind and
metadata.name, in namespace `tactful`; and the pieces fit together: the
StatefulSet's governing Service is headless, selectors match the pod labels,
Service target ports and probe ports are container ports, the ConfigMap and
Secret the pods use are defined here, the ServiceMonitor selects the metrics
Service by a port it has and gets job="tactful" from its jobLabel, requests
and limits are set, and kustomization.yaml lists every manifest but the Secret
template. When the `kubernetes-validate` package is importable, each built-in
kind is also validated against its OpenAPI schema (strict: unknown fields fail).

Exits 1 listing every problem. A ConfigMap that differs from topologies/ is a
warning (regenerate it with the command in configmap-topologies.yaml).
Needs PyYAML.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NAMESPACE = "tactful"
TEMPLATES = {"secret.example.yaml"}  # not applied by kustomize on purpose
REQUIRED_KINDS = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "StatefulSet",
    "Service",
    "PodDisruptionBudget",
    "ServiceMonitor",
}

problems: list[str] = []
warnings: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


def get(d: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def load() -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(HERE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        try:
            loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as exc:
            problem(f"{path.name}: not YAML: {exc}")
            continue
        if not loaded:
            problem(f"{path.name}: no document")
        for doc in loaded:
            where = f"{path.name}"
            if not isinstance(doc, dict):
                problem(f"{where}: a document is not a mapping")
                continue
            for field in ("apiVersion", "kind"):
                if not doc.get(field):
                    problem(f"{where}: no {field}")
            if not get(doc, "metadata", "name"):
                problem(f"{where}: no metadata.name")
            if doc.get("kind") != "Namespace" and get(doc, "metadata", "namespace") != NAMESPACE:
                problem(f"{where}: {doc.get('kind')} is not in namespace {NAMESPACE}")
            docs.append((path.name, doc))
    return docs


def selects(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    if not selector:
        return False
    return all((labels or {}).get(k) == v for k, v in selector.items())


def check(docs: list[tuple[str, dict[str, Any]]]) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc.get("kind", ""), []).append(doc)
    for kind in sorted(REQUIRED_KINDS - by_kind.keys()):
        problem(f"no {kind} manifest")

    services = {get(s, "metadata", "name"): s for s in by_kind.get("Service", [])}
    configmaps = {get(c, "metadata", "name") for c in by_kind.get("ConfigMap", [])}
    secrets = {get(s, "metadata", "name") for s in by_kind.get("Secret", [])}

    for sts in by_kind.get("StatefulSet", []):
        name = f"StatefulSet {get(sts, 'metadata', 'name')}"
        spec = sts.get("spec", {})
        pod_labels = get(spec, "template", "metadata", "labels", default={})
        if not selects(get(spec, "selector", "matchLabels"), pod_labels):
            problem(f"{name}: selector does not match the pod template's labels")
        governing = services.get(spec.get("serviceName"))
        if governing is None:
            problem(f"{name}: serviceName {spec.get('serviceName')!r} is no Service here")
        elif get(governing, "spec", "clusterIP") != "None":
            problem(f"{name}: its governing Service {spec.get('serviceName')} is not headless")
        if spec.get("replicas") != 2:
            problem(f"{name}: replicas is {spec.get('replicas')}, expected 2")
        if not spec.get("volumeClaimTemplates"):
            problem(f"{name}: no volumeClaimTemplates for the state stores")
        pod = get(spec, "template", "spec", default={})
        volumes = {v.get("name"): v for v in pod.get("volumes", [])}
        claim_names = {get(c, "metadata", "name") for c in spec.get("volumeClaimTemplates", [])}
        for v in volumes.values():
            cm = get(v, "configMap", "name")
            if cm and cm not in configmaps:
                problem(f"{name}: volume {v['name']} uses ConfigMap {cm}, not defined here")
        for c in pod.get("containers", []):
            cname = f"{name} container {c.get('name')}"
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
            env = {e.get("name") for e in c.get("env", [])}
            for ref in c.get("envFrom", []):
                sec = get(ref, "secretRef", "name")
                if sec and sec not in secrets:
                    problem(f"{cname}: envFrom Secret {sec}, not defined here")
            for var in ("TACTFUL_BOOTSTRAP_SERVERS", "TACTFUL_WEB_PORT", "TACTFUL_TOPOLOGIES"):
                if var not in env:
                    problem(f"{cname}: no {var}")
            web_port = next((e.get("value") for e in c.get("env", []) if e.get("name") == "TACTFUL_WEB_PORT"), None)
            if web_port is not None and str(ports.get("http")) != str(web_port):
                problem(f"{cname}: port 'http' {ports.get('http')} is not TACTFUL_WEB_PORT {web_port}")
            for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
                http = get(c, probe, "httpGet", default={})
                if http.get("path") != path:
                    problem(f"{cname}: {probe} path is {http.get('path')!r}, expected {path}")
                if http.get("port") not in ports and http.get("port") not in ports.values():
                    problem(f"{cname}: {probe} port {http.get('port')!r} is not a container port")
            for level in ("requests", "limits"):
                res = get(c, "resources", level, default={})
                if not res.get("cpu") or not res.get("memory"):
                    problem(f"{cname}: resources.{level} needs cpu and memory")
            for m in c.get("volumeMounts", []):
                if m.get("name") not in volumes and m.get("name") not in claim_names:
                    problem(f"{cname}: volumeMount {m.get('name')} has no volume")

        for svc in services.values():
            sname = f"Service {get(svc, 'metadata', 'name')}"
            if not selects(get(svc, "spec", "selector"), pod_labels):
                problem(f"{sname}: selector does not match the StatefulSet's pods")
            container_ports = {p.get("name") for c in pod.get("containers", []) for p in c.get("ports", [])}
            for p in get(svc, "spec", "ports", default=[]):
                if p.get("targetPort") not in container_ports:
                    problem(f"{sname}: targetPort {p.get('targetPort')!r} is no named container port")

        for pdb in by_kind.get("PodDisruptionBudget", []):
            if not selects(get(pdb, "spec", "selector", "matchLabels"), pod_labels):
                problem(f"PodDisruptionBudget {get(pdb, 'metadata', 'name')}: selector does not match the pods")

    for sm in by_kind.get("ServiceMonitor", []):
        mname = f"ServiceMonitor {get(sm, 'metadata', 'name')}"
        selected = [
            s
            for s in services.values()
            if selects(get(sm, "spec", "selector", "matchLabels"), get(s, "metadata", "labels"))
        ]
        if len(selected) != 1:
            problem(f"{mname}: selects {len(selected)} Services, expected exactly 1 (else series are scraped twice)")
            continue
        svc = selected[0]
        svc_ports = {p.get("name") for p in get(svc, "spec", "ports", default=[])}
        for ep in get(sm, "spec", "endpoints", default=[]):
            if ep.get("port") not in svc_ports:
                svc_name = get(svc, "metadata", "name")
                problem(f"{mname}: endpoint port {ep.get('port')!r} is not a port of Service {svc_name}")
        job = get(svc, "metadata", "labels", default={}).get(get(sm, "spec", "jobLabel", default=""))
        if job != "tactful":
            problem(f'{mname}: jobLabel gives job={job!r}; the alert rules expect job="tactful"')

    for cm in by_kind.get("ConfigMap", []):
        if get(cm, "metadata", "name") != "tactful-topologies":
            continue
        data = cm.get("data") or {}
        files = {p.name: p.read_text() for p in sorted((ROOT / "topologies").glob("*.yaml"))}
        if data != files:
            differ = sorted(set(data) ^ set(files) | {k for k in set(data) & set(files) if data[k] != files[k]})
            warnings.append(
                "configmap-topologies.yaml differs from topologies/ "
                f"({', '.join(differ)}): regenerate it with the command in its header"
            )


def check_kustomization() -> None:
    path = HERE / "kustomization.yaml"
    try:
        kust = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        problem(f"kustomization.yaml: {exc}")
        return
    listed = set(kust.get("resources", []))
    manifests = {p.name for p in HERE.glob("*.yaml")} - {"kustomization.yaml"} - TEMPLATES
    for missing in sorted(manifests - listed):
        problem(f"kustomization.yaml does not list {missing}")
    for extra in sorted(listed - manifests):
        problem(f"kustomization.yaml lists {extra}, which is not a manifest here")
    for t in sorted(TEMPLATES & listed):
        problem(f"kustomization.yaml lists the template {t}")


def schema_validate(docs: list[tuple[str, dict[str, Any]]]) -> str:
    try:
        import kubernetes_validate  # type: ignore[import-not-found]
    except ImportError:
        return "schemas: skipped (pip install kubernetes-validate to check them)"
    version = "1.30.0"
    checked = 0
    for fname, doc in docs:
        if "monitoring.coreos.com" in str(doc.get("apiVersion")):
            continue  # a CRD: no schema in the package
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as exc:
            problem(f"{fname}: {doc.get('kind')} does not match the Kubernetes {version} schema: {exc.message}")
        except Exception as exc:  # the package raises its own errors for unknown versions/kinds
            problem(f"{fname}: schema check failed: {exc}")
    return f"schemas: {checked} documents valid against Kubernetes {version} (strict)"


def main() -> int:
    docs = load()
    check(docs)
    check_kustomization()
    note = schema_validate(docs)
    kinds = sorted({d.get("kind", "?") for _, d in docs})
    print(f"{len(docs)} Kubernetes documents checked ({', '.join(kinds)}); {note}")
    for w in warnings:
        print(f"WARNING {w}")
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
