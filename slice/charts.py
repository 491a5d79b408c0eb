"""Render wgslice's Helm charts into plain manifests, with Helm's own engine, offline.

`wgslice join` and the lab install wgslice from exactly what the charts produce, so what
the lab exercises is what users install with `helm install`. Helm's template engine is
not re-implemented here: `helm_python` (helm-python-sdk) bundles Helm's Go SDK, so
values.schema.json, `required`, `.Files.Get`, `toYaml` and friends behave as in the helm
binary. What this module adds is what `helm install` does after rendering: the chart's
`crds/` first, then the templates in Helm's install order.

The charts live in the repository's `charts/` directory, installed as the package
`wgslice.charts`. The hub chart's `crds/` and `files/default-pool.yaml` are symlinks to
`slice/crds/` (one source for the API); the chart is handed to Helm as an in-memory archive
built with the links dereferenced, so the same code works from a checkout (links) and from
a wheel (setuptools copies linked files), and Helm logs no "found symbolic link" notices.
"""

from __future__ import annotations

import io
import os
import tarfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from wgslice.errors import UserError

HUB = "wgslice-hub"
MEMBER = "wgslice-member"
HUB_MEMBER = "wgslice-hub-member"
CHARTS = (HUB, MEMBER, HUB_MEMBER)

# Helm's own install order (helm.sh/helm/v4/pkg/release/v1/util/kind_sorter.go); CRDs from
# the chart's crds/ directory go before all templates, kinds not listed go last.
INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
)
_RANK = {kind: i for i, kind in enumerate(INSTALL_ORDER)}

# Pod Security level of the release namespace when render() creates it: the member's agents
# run privileged with hostNetwork (routes, WireGuard); the hub runs unprivileged pods only.
_POD_SECURITY = {HUB: "restricted", MEMBER: "privileged", HUB_MEMBER: "restricted"}


class ChartError(UserError):
    """Values the chart refuses (schema, `required`), or a chart that does not exist."""


def chart_dir(chart: str) -> Path:
    """The directory of a shipped chart (in the checkout, or in site-packages)."""
    if chart not in CHARTS:
        raise ChartError(f"unknown chart {chart!r}: use one of {', '.join(CHARTS)}")
    return Path(str(resources.files("wgslice.charts"))) / chart


def archive(chart: str) -> bytes:
    """The chart as a `.tgz` (what `helm package` makes), symlinks replaced by their files."""
    root = chart_dir(chart)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", dereference=True) as tar:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith((".pyc", "~")) or name == "__init__.py":
                    continue
                path = Path(dirpath) / name
                tar.add(path, arcname=f"{chart}/{path.relative_to(root)}", recursive=False)
    return buf.getvalue()


def render(
    chart: str,
    values: dict[str, Any] | None,
    release: str,
    namespace: str,
    *,
    create_namespace: bool = False,
) -> list[dict[str, Any]]:
    """The manifests `helm install RELEASE CHART -n NAMESPACE` would apply, in apply order.

    `values` are user values (merged over the chart's values.yaml and checked against its
    values.schema.json, as Helm does). The chart's CRDs are included, first.
    `create_namespace` prepends the release Namespace (like `--create-namespace`), labelled
    with the Pod Security level the chart's pods need.
    Raises ChartError (a UserError) for values the chart refuses.
    """
    crd_texts, rendered = _helm_render(chart, values, release, namespace)
    crds = [doc for text in crd_texts for doc in _docs(text)]
    objs: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if Path(path).name.startswith("_") or path.endswith("NOTES.txt"):
            continue
        objs.extend(_docs(rendered[path]))
    objs.sort(key=_install_rank)  # stable: same kind keeps template path order
    if create_namespace:
        crds.insert(0, namespace_object(namespace, _POD_SECURITY[chart]))
    return crds + objs


def namespace_object(name: str, pod_security: str) -> dict[str, Any]:
    """A Namespace with its Pod Security admission level (enforce, audit and warn)."""
    labels = {f"pod-security.kubernetes.io/{mode}": pod_security
              for mode in ("enforce", "audit", "warn")}
    labels["app.kubernetes.io/part-of"] = "wgslice"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def notes(chart: str, values: dict[str, Any] | None, release: str, namespace: str) -> str:
    """The chart's NOTES.txt, rendered: what to do next, for a CLI to print."""
    _, rendered = _helm_render(chart, values, release, namespace)
    return next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")


def _helm_render(
    chart: str, values: dict[str, Any] | None, release: str, namespace: str
) -> tuple[list[str], dict[str, str]]:
    """(texts of crds/ files, template path -> rendered text), from Helm's own engine."""
    import helm_python  # a native library: loaded only when something is rendered

    try:
        with helm_python.Chart.load_archive(archive(chart)) as loaded:
            crds = [crd["data"] for crd in loaded.crds]
            rendered = loaded.render(
                values or {}, name=release, namespace=namespace, is_install=True
            )
    except (helm_python.HelmValuesError, helm_python.HelmRenderError) as exc:
        raise ChartError(f"chart {chart}: {_first_lines(str(exc))}") from exc
    return crds, rendered


def _install_rank(obj: dict[str, Any]) -> tuple[int, str]:
    """Helm's order: known kinds by INSTALL_ORDER, then unknown kinds alphabetically."""
    kind = str(obj.get("kind", ""))
    return (_RANK[kind], "") if kind in _RANK else (len(_RANK), kind)


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d]


def _first_lines(message: str, limit: int = 12) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return "\n".join(lines[:limit])
