"""Computed APIs: access/identity reviews, TokenRequest, pod Binding and the scale subresource.

None of these is stored; each answers from the request and the current state, the way
kube-apiserver's virtual resources do (`kubectl auth can-i`, `kubectl auth whoami`,
`kubectl scale`, the kubelet's token requests, a scheduler's binding).
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .auth import Authenticator, UserInfo, mint_token
from .rbac import Attributes, Authorizer
from .resources import ResourceType
from .store import Obj
from .verbs import Api


def access_review(authz: Authorizer, user: UserInfo, body: dict[str, Any],
                  kind: str) -> dict[str, Any]:
    """SelfSubjectAccessReview / SubjectAccessReview: is spec's attribute set allowed?"""
    spec = body.get("spec") or {}
    if kind == "SubjectAccessReview":
        user = UserInfo(spec.get("user", ""), tuple(spec.get("groups") or ()),
                        spec.get("uid", ""))
    ra = spec.get("resourceAttributes")
    na = spec.get("nonResourceAttributes")
    if ra:
        attrs = Attributes(verb=ra.get("verb", ""), group=ra.get("group", ""),
                           resource=ra.get("resource", ""),
                           subresource=ra.get("subresource", ""),
                           namespace=ra.get("namespace", ""), name=ra.get("name", ""))
    elif na:
        attrs = Attributes(verb=na.get("verb", ""), path=na.get("path", ""))
    else:
        raise errors.invalid(kind, "authorization.k8s.io", "", [(
            "spec.resourceAttributes", "FieldValueRequired",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes "
            "must be specified")])
    ok = authz.allowed(user, attrs)
    out = copy.deepcopy(body)
    out["apiVersion"], out["kind"] = "authorization.k8s.io/v1", kind
    out.setdefault("metadata", {})
    out["status"] = {"allowed": ok}
    if ok:
        out["status"]["reason"] = "RBAC: allowed"
    return out


def rules_review(authz: Authorizer, user: UserInfo, body: dict[str, Any]) -> dict[str, Any]:
    """SelfSubjectRulesReview (`kubectl auth can-i --list`)."""
    ns = (body.get("spec") or {}).get("namespace", "")
    rules = list(authz.rules_for(user, ns))
    if "system:masters" in user.groups:
        rules.append({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    res = [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in r}
           for r in rules if r.get("resources")]
    res.append({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})
    nonres = [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
              for r in rules if r.get("nonResourceURLs")]
    nonres.append({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                         "/version", "/openapi/*"]})
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "metadata": {}, "spec": {"namespace": ns},
            "status": {"resourceRules": res, "nonResourceRules": nonres, "incomplete": False}}


def self_subject_review(user: UserInfo) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": user.as_dict()}}


def token_review(authn: Authenticator, body: dict[str, Any]) -> dict[str, Any]:
    token = (body.get("spec") or {}).get("token", "")
    user = authn.user_for_token(token)
    status: dict[str, Any] = {"authenticated": user is not None}
    if user is not None:
        status["user"] = user.as_dict()
    else:
        status["error"] = "invalid bearer token"
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
            "spec": body.get("spec") or {}, "status": status}


def token_request(api: Api, authn: Authenticator, ns: str, name: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    """POST serviceaccounts/NAME/token: a fresh token for that ServiceAccount."""
    sa = api.store.get(("", "serviceaccounts"), ns, name)
    if sa is None:
        raise errors.not_found("serviceaccounts", "", name)
    spec = dict(body.get("spec") or {})
    exp = int(spec.get("expirationSeconds") or 3600)
    spec["expirationSeconds"] = exp
    ref = spec.get("boundObjectRef") or {}
    pod = None
    if ref.get("kind") == "Pod":
        obj = api.store.get(("", "pods"), ns, ref.get("name", ""))
        if obj is None or (ref.get("uid") and obj["metadata"].get("uid") != ref["uid"]):
            raise errors.not_found("pods", "", ref.get("name", ""))
        pod = {"name": ref.get("name", ""), "uid": obj["metadata"].get("uid", "")}
    token = mint_token(authn.signing_key, ns, name, sa["metadata"].get("uid", ""), exp,
                       spec.get("audiences"), pod)
    from datetime import UTC, datetime, timedelta
    ts = (datetime.now(UTC) + timedelta(seconds=exp)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
            "status": {"token": token, "expirationTimestamp": ts}}


def bind_pod(api: Api, rt: ResourceType, ns: str, name: str, body: dict[str, Any]) -> Obj:
    """POST pods/NAME/binding: set spec.nodeName once (409 when already bound)."""
    pod = api.get(rt, ns, name)
    node = (body.get("target") or {}).get("name", "")
    if (pod.get("spec") or {}).get("nodeName"):
        raise errors.conflict("pods", "", name, f"pod {name} is already assigned to node "
                              f"\"{pod['spec']['nodeName']}\"")
    new = copy.deepcopy(pod)
    new.setdefault("spec", {})["nodeName"] = node
    api.store.put(rt.key, new)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}


def _scale_paths(api: Api, rt: ResourceType) -> tuple[list[str], list[str], list[str]]:
    """spec replicas, status replicas and label selector paths (a CRD's scale subresource
    names them; built-in workloads use spec.replicas/status.replicas/spec.selector)."""
    crd = api.registry.crd_for(rt)
    if crd is not None:
        ver = next((v for v in crd["spec"].get("versions", []) if v.get("name") == rt.version),
                   {})
        sc = (ver.get("subresources") or {}).get("scale") or {}
        return ((sc.get("specReplicasPath") or ".spec.replicas").strip(".").split("."),
                (sc.get("statusReplicasPath") or ".status.replicas").strip(".").split("."),
                (sc.get("labelSelectorPath") or "").strip(".").split(".") if
                sc.get("labelSelectorPath") else [])
    return ["spec", "replicas"], ["status", "replicas"], []


def _dig(obj: Any, path: list[str]) -> Any:
    for p in path:
        obj = obj.get(p) if isinstance(obj, dict) else None
    return obj


def get_scale(api: Api, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
    obj = api.get(rt, ns, name)
    md = obj["metadata"]
    spec_p, status_p, sel_p = _scale_paths(api, rt)
    if sel_p:
        selector = _dig(obj, sel_p) or ""
    else:
        sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sel.items())
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": md["name"], "namespace": md.get("namespace"),
                         "uid": md.get("uid"), "resourceVersion": md["resourceVersion"],
                         "creationTimestamp": md.get("creationTimestamp")},
            "spec": {"replicas": _dig(obj, spec_p) or 0},
            "status": {"replicas": _dig(obj, status_p) or 0, "selector": selector}}


def set_scale(api: Api, rt: ResourceType, ns: str, name: str, scale: dict[str, Any]) -> Any:
    obj = api.get(rt, ns, name)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv and rv != obj["metadata"]["resourceVersion"]:
        raise errors.conflict(rt.plural, rt.group, name)
    new = copy.deepcopy(obj)
    spec_p, _, _ = _scale_paths(api, rt)
    node = new
    for p in spec_p[:-1]:
        node = node.setdefault(p, {})
    node[spec_p[-1]] = int((scale.get("spec") or {}).get("replicas", 0))
    api.update(rt, ns, name, new)
    return get_scale(api, rt, ns, name)
