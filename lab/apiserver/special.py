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
    token = mint_token(authn.signing_key, ns, name, sa["metadata"].get("uid", ""), exp,
                       spec.get("audiences"))
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


def get_scale(api: Api, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
    obj = api.get(rt, ns, name)
    md = obj["metadata"]
    sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": md["name"], "namespace": md.get("namespace"),
                         "uid": md.get("uid"), "resourceVersion": md["resourceVersion"],
                         "creationTimestamp": md.get("creationTimestamp")},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sel.items())}}


def set_scale(api: Api, rt: ResourceType, ns: str, name: str, scale: dict[str, Any]) -> Any:
    obj = api.get(rt, ns, name)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv and rv != obj["metadata"]["resourceVersion"]:
        raise errors.conflict(rt.plural, rt.group, name)
    new = copy.deepcopy(obj)
    new.setdefault("spec", {})["replicas"] = int((scale.get("spec") or {}).get("replicas", 0))
    api.update(rt, ns, name, new)
    return get_scale(api, rt, ns, name)
