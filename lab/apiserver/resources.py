"""Resource types the lab API server serves: the built-in table and CRD-derived types.

A `ResourceType` is everything the HTTP layer needs to route, authorize, store and print
one resource: group/version/plural/kind, scope, subresources and printer columns. Built-in
types are a static table; custom types are derived from CustomResourceDefinition objects
by `crd_types` whenever a CRD is written, so they are served as soon as the CRD exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class ResourceType:
    """One served resource (per group/version)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    printer_columns: tuple[dict[str, Any], ...] = ()
    # Set for custom resources: the CRD object name (plural.group) and its serving version's
    # schema; the validator needs the whole CRD, which the registry keeps.
    crd_name: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: one store per (group, plural) whatever the version."""
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        """`plural.group` as Kubernetes prints it in messages (`pods`, `slices.wgslice.io`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


def _t(group: str, version: str, plural: str, kind: str, namespaced: bool,
       short: tuple[str, ...] = (), sub: tuple[str, ...] = (),
       verbs: tuple[str, ...] = ALL_VERBS, cats: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, kind.lower(), short,
                        frozenset(sub), verbs, cats)


_ALL = ("all",)
BUILTIN: tuple[ResourceType, ...] = (
    _t("", "v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize")),
    _t("", "v1", "pods", "Pod", True, ("po",), ("status", "binding"), cats=_ALL),
    _t("", "v1", "services", "Service", True, ("svc",), ("status",), cats=_ALL),
    _t("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _t("", "v1", "secrets", "Secret", True),
    _t("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ("token",)),
    _t("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    _t("", "v1", "events", "Event", True, ("ev",)),
    _t("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _t("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",)),
    _t("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
    _t("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    _t("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status", "scale"),
       cats=_ALL),
    _t("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",), cats=_ALL),
    _t("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale"),
       cats=_ALL),
    _t("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), ("status", "scale"),
       cats=_ALL),
    _t("batch", "v1", "jobs", "Job", True, (), ("status",), cats=_ALL),
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _t("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    _t("coordination.k8s.io", "v1", "leases", "Lease", True),
    _t("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    _t("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _t("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",),
       ("status",)),
    _t("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
       False, ("crd", "crds"), ("status",)),
    _t("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
       False, verbs=CREATE_ONLY),
    _t("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False,
       verbs=CREATE_ONLY),
    _t("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview",
       False, verbs=CREATE_ONLY),
    _t("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
       verbs=CREATE_ONLY),
    _t("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY),
)

# Review resources are computed, never stored.
VIRTUAL_GROUPS = frozenset({"authorization.k8s.io", "authentication.k8s.io"})


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The served ResourceTypes of one CRD object (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group", "")
    plural = names.get("plural", "")
    out = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        subs = tuple(k for k in (ver.get("subresources") or {}) if k in ("status", "scale"))
        out.append(ResourceType(
            group=group, version=ver.get("name", ""), plural=plural,
            kind=names.get("kind", ""), namespaced=spec.get("scope") == "Namespaced",
            singular=names.get("singular") or names.get("kind", "").lower(),
            short_names=tuple(names.get("shortNames") or ()),
            subresources=frozenset(subs),
            categories=tuple(names.get("categories") or ()),
            printer_columns=tuple(ver.get("additionalPrinterColumns") or ()),
            crd_name=(crd.get("metadata") or {}).get("name"),
        ))
    return out


def crd_problems(crd: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Structural checks a real API server makes on a CRD: (field, reason, message)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    errs: list[tuple[str, str, str]] = []
    name = (crd.get("metadata") or {}).get("name", "")
    if not spec.get("group"):
        errs.append(("spec.group", "FieldValueRequired", "Required value"))
    for k in ("plural", "kind"):
        if not names.get(k):
            errs.append((f"spec.names.{k}", "FieldValueRequired", "Required value"))
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        errs.append(("metadata.name", "FieldValueInvalid",
                     f"Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(("spec.scope", "FieldValueNotSupported",
                     'Unsupported value: must be "Namespaced" or "Cluster"'))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(("spec.versions", "FieldValueRequired", "Required value"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errs.append(("spec.versions", "FieldValueInvalid",
                     "Invalid value: must have exactly one version marked as storage version"))
    return errs


class Registry:
    """Lookup of served resource types by (group, version, plural) and by short names."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self.crds: dict[str, dict[str, Any]] = {}  # CRD name -> CRD object (latest)
        for rt in BUILTIN:
            self._by_gvr[(rt.group, rt.version, rt.plural)] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._by_gvr.values())

    def groups(self) -> dict[str, list[str]]:
        """group -> versions (preferred first), core ("") included."""
        out: dict[str, list[str]] = {}
        for g, v, _ in self._by_gvr:
            vs = out.setdefault(g, [])
            if v not in vs:
                vs.append(v)
        for g, vs in out.items():
            crd_pref = [c for c in self.crds.values() if c["spec"].get("group") == g]
            if crd_pref:
                order = [v["name"] for v in crd_pref[0]["spec"].get("versions", [])]
                vs.sort(key=lambda v: order.index(v) if v in order else len(order))
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self._by_gvr.items() if g == group and v == version]

    def set_crd(self, crd: dict[str, Any]) -> None:
        """(Re)register the types of a CRD; drops versions it no longer serves."""
        name = crd["metadata"]["name"]
        self.drop_crd(name)
        self.crds[name] = crd
        for rt in crd_types(crd):
            self._by_gvr[(rt.group, rt.version, rt.plural)] = rt

    def drop_crd(self, name: str) -> None:
        self.crds.pop(name, None)
        for k in [k for k, rt in self._by_gvr.items() if rt.crd_name == name]:
            del self._by_gvr[k]

    def crd_for(self, rt: ResourceType) -> dict[str, Any] | None:
        return self.crds.get(rt.crd_name) if rt.crd_name else None
