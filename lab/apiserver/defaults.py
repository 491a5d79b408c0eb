"""What kube-apiserver adds or checks on write besides the generic metadata rules.

- defaults of built-in kinds that clients read back (Namespace finalizer/phase/name label,
  Pod phase/serviceAccountName/restartPolicy/..., Service type/protocol/targetPort,
  workload replicas), a small subset of the real defaulting functions;
- CRD checks (names, scope, storage version, structural schema and compilable CEL rules
  via validation.py) and the status the CRD controllers would write (Established);
- `unknown_fields`: which fields pruning dropped, for `fieldValidation=Strict`.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from .resources import ResourceType, crd_problems

Obj = dict[str, Any]
NS_KEY = ("", "namespaces")
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
_WORKLOADS = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets")}


def _pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = str(c.get("image", ""))
            c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or
                         ":" not in image.rsplit("/", 1)[-1] else "IfNotPresent")
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")


def write_normalize(rt: ResourceType, obj: Obj) -> None:
    """On every write: Secret stringData is merged into data (base64) and dropped."""
    if rt.key == ("", "secrets") and isinstance(obj.get("stringData"), dict):
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        for k, v in obj.pop("stringData").items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data


def create_defaults(rt: ResourceType, obj: Obj) -> None:
    """Defaults kube-apiserver applies when an object of a built-in kind is created."""
    key = rt.key
    write_normalize(rt, obj)
    if key == NS_KEY:
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            obj["metadata"]["name"]
    elif key == ("", "pods"):
        _pod_spec(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending"}
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
    elif key in _WORKLOADS or key == ("apps", "daemonsets"):
        spec = obj.setdefault("spec", {})
        if key in _WORKLOADS:
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        tpl = spec.get("template")
        if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict):
            _pod_spec(tpl["spec"])


def crd_checks(crd: Obj) -> list[tuple[str, str, str]]:
    """Why a CRD would be refused: (field, reason, message) causes."""
    problems = crd_problems(crd)
    if problems:
        return problems
    try:
        from wgslice.slice.crds.schema_check import structural_errors
    except ImportError:
        return []
    try:
        found = structural_errors(crd)
    except (KeyError, TypeError, AttributeError) as e:
        found = [f"malformed schema: {e}"]
    return [("spec.validation.openAPIV3Schema", "FieldValueInvalid", p) for p in found]


def crd_status(crd: Obj, now: str) -> Obj:
    spec = crd["spec"]
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now}]}


def unknown_fields(before: Any, after: Any, path: str = "") -> list[str]:
    """Dotted paths present in `before` but dropped from `after` (by schema pruning)."""
    out: list[str] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for k, v in before.items():
            p = f"{path}.{k}" if path else k
            if k not in after:
                out.append(p)
            else:
                out += unknown_fields(v, after[k], p)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out += unknown_fields(b, a, f"{path}[{i}]")
    return out
