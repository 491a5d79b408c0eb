"""RBAC authorization over the stored Roles, ClusterRoles and their bindings.

Same rule semantics as Kubernetes' RBAC authorizer: a request is allowed when any rule
reachable from a binding whose subjects match the user (User, Group, ServiceAccount)
covers its verb, API group, resource (with `/subresource`), and resourceName; `*`
wildcards verbs, groups and resources. ClusterRoleBindings grant everywhere, RoleBindings
only in their namespace. ClusterRole aggregationRule is honoured. system:masters is
allowed everything; discovery paths and the self-review APIs are open to every
authenticated user (as the default system:discovery / system:basic-user bindings do).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .auth import MASTERS, UserInfo
from .store import Store

RBAC = "rbac.authorization.k8s.io"
PUBLIC_PATHS = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
SELF_REVIEWS = {("authorization.k8s.io", "selfsubjectaccessreviews"),
                ("authorization.k8s.io", "selfsubjectrulesreviews"),
                ("authentication.k8s.io", "selfsubjectreviews")}


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do (Kubernetes' authorizer.Attributes)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def _matches_subject(user: UserInfo, subj: dict[str, Any], binding_ns: str) -> bool:
    kind = subj.get("kind")
    if kind == "User":
        return subj.get("name") == user.username
    if kind == "Group":
        return subj.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subj.get("namespace") or binding_ns
        return user.username == f"system:serviceaccount:{ns}:{subj.get('name')}"
    return False


def _has(values: Iterable[str] | None, want: str) -> bool:
    vals = list(values or ())
    return "*" in vals or want in vals


def rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    if not _has(rule.get("verbs"), a.verb):
        return False
    if not a.is_resource:
        urls = rule.get("nonResourceURLs") or []
        return any(u == a.path or (u.endswith("*") and a.path.startswith(u[:-1]))
                   for u in urls)
    if not _has(rule.get("apiGroups"), a.group):
        return False
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    resources = rule.get("resources") or []
    ok = ("*" in resources or res in resources
          or (a.subresource and f"*/{a.subresource}" in resources))
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


class Authorizer:
    """Evaluates RBAC objects straight from the store (no cache: the lab is small)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _role_rules(self, ref: dict[str, Any], ns: str) -> list[dict[str, Any]]:
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "Role":
            role = self.store.get((RBAC, "roles"), ns, name)
            return list((role or {}).get("rules") or [])
        role = self.store.get((RBAC, "clusterroles"), "", name)
        return self._cluster_role_rules(role, set())

    def _cluster_role_rules(self, role: dict[str, Any] | None, seen: set[str]) -> list[Any]:
        if role is None or role["metadata"]["name"] in seen:
            return []
        seen.add(role["metadata"]["name"])
        rules = list(role.get("rules") or [])
        agg = role.get("aggregationRule") or {}
        for sel in agg.get("clusterRoleSelectors") or []:
            want = sel.get("matchLabels") or {}
            for other in self.store.iter((RBAC, "clusterroles"), ""):
                labels = other["metadata"].get("labels") or {}
                if want and all(labels.get(k) == v for k, v in want.items()):
                    rules += self._cluster_role_rules(other, seen)
        return rules

    def rules_for(self, user: UserInfo, namespace: str) -> Iterator[dict[str, Any]]:
        """Every rule that applies to user in namespace ("" = cluster-wide only)."""
        for b in self.store.iter((RBAC, "clusterrolebindings"), ""):
            if any(_matches_subject(user, s, "") for s in b.get("subjects") or []):
                yield from self._role_rules(b.get("roleRef") or {}, "")
        if namespace:
            for b in self.store.iter((RBAC, "rolebindings"), namespace):
                if any(_matches_subject(user, s, namespace) for s in b.get("subjects") or []):
                    yield from self._role_rules(b.get("roleRef") or {}, namespace)

    def allowed(self, user: UserInfo, a: Attributes) -> bool:
        if MASTERS in user.groups:
            return True
        if not a.is_resource and a.path.startswith(PUBLIC_PATHS):
            return True
        if a.is_resource and (a.group, a.resource) in SELF_REVIEWS and a.verb == "create":
            return True
        return any(rule_allows(r, a) for r in self.rules_for(user, a.namespace))


def forbidden_message(user: UserInfo, a: Attributes, group_resource: str) -> str:
    """The exact text Kubernetes puts in a 403 Status."""
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    if not a.is_resource:
        return (f'forbidden: User "{user.username}" cannot {a.verb} path "{a.path}"')
    who = f'{group_resource} "{a.name}"' if a.name else group_resource
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return (f'{who} is forbidden: User "{user.username}" cannot {a.verb} resource "{res}" '
            f'in API group "{a.group}" {scope}')


BOOTSTRAP_ROLES: list[dict[str, Any]] = [
    {"metadata": {"name": "cluster-admin"},
     "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
               {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
    {"metadata": {"name": "admin"},
     "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
    {"metadata": {"name": "edit"},
     "rules": [{"apiGroups": ["", "apps", "batch", "networking.k8s.io", "coordination.k8s.io",
                              "events.k8s.io", "policy"],
                "resources": ["*"], "verbs": ["*"]}]},
    {"metadata": {"name": "view"},
     "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]},
]
