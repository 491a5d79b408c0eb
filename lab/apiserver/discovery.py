"""Discovery documents: /version, /api, /apis, per group-version lists, and minimal OpenAPI.

Plain (non-aggregated) discovery: kubectl asks for aggregated discovery v2 first and falls
back to these documents when the reply's content type is plain JSON. The OpenAPI v3
documents are deliberately minimal — one path per resource whose PATCH operation lists
the `fieldValidation` parameter, so kubectl decides the server validates fields itself and
`kubectl apply` works without `--validate=false`; built-in kinds have open schemas, custom
resources their CRD's schema (for `kubectl explain`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .resources import Registry, ResourceType

VERSION = {
    "major": "1", "minor": "37", "gitVersion": "v1.37.0-wgslice-lab",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc",
    "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "37",
}


def _gv_path(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def api_group_list(reg: Registry) -> dict[str, Any]:
    groups = []
    for g, versions in sorted(reg.groups().items()):
        if not g:
            continue
        vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
        groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg: Registry, group: str) -> dict[str, Any] | None:
    versions = reg.groups().get(group)
    if not versions:
        return None
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs,
            "preferredVersion": vs[0]}


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    d: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular,
                         "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(rt.verbs)}
    if rt.short_names:
        d["shortNames"] = list(rt.short_names)
    if rt.categories:
        d["categories"] = list(rt.categories)
    d["storageVersionHash"] = hashlib.sha256(rt.group_resource.encode()).hexdigest()[:12]
    return d


def _sub_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    kind, verbs = rt.kind, ["get", "patch", "update"]
    if sub == "scale":
        kind = "Scale"
    elif sub == "token":
        kind, verbs = "TokenRequest", ["create"]
    elif sub == "binding":
        kind, verbs = "Binding", ["create"]
    elif sub == "finalize":
        verbs = ["update"]
    return {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
            "kind": kind, "verbs": verbs}


def resource_list(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = reg.in_group_version(group, version)
    if not types:
        return None
    resources = []
    for rt in sorted(types, key=lambda r: r.plural):
        resources.append(_resource_entry(rt))
        resources += [_sub_entry(rt, s) for s in sorted(rt.subresources)]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32].upper()


def openapi_v3_index(reg: Registry) -> dict[str, Any]:
    paths = {}
    for g, versions in reg.groups().items():
        for v in versions:
            rel = _gv_path(g, v).lstrip("/")
            doc = openapi_v3_doc(reg, g, v)
            paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={_hash(doc)}"}
    return {"paths": paths}


def _crd_schema(reg: Registry, rt: ResourceType) -> dict[str, Any]:
    """A CRD version's openAPIV3Schema (so `kubectl explain` shows its fields); built-in
    kinds get an open object."""
    crd = reg.crd_for(rt)
    for ver in (crd or {}).get("spec", {}).get("versions", []):
        if ver.get("name") == rt.version:
            schema = (ver.get("schema") or {}).get("openAPIV3Schema")
            if isinstance(schema, dict) and schema:
                return copy.deepcopy(schema)
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def openapi_v3_doc(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    """One group-version's OpenAPI v3: open schemas, every op advertising fieldValidation."""
    types = reg.in_group_version(group, version)
    if not types:
        return None
    base = _gv_path(group, version)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
              {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
              {"name": "dryRun", "in": "query", "schema": {"type": "string"}}]
    for rt in types:
        gvk = {"group": group, "version": version, "kind": rt.kind}
        sname = f"{(group or 'core').replace('.', '_')}.{version}.{rt.kind}"
        schemas[sname] = {**_crd_schema(reg, rt), "x-kubernetes-group-version-kind": [gvk]}
        ref = {"content": {"application/json": {"schema": {
            "$ref": f"#/components/schemas/{sname}"}}}}

        def op(action: str, gvk: dict[str, Any] = gvk, ref: dict[str, Any] = ref) -> Any:
            return {"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
                    "parameters": params, "responses": {"200": ref}}
        prefix = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
        paths[f"{prefix}/{rt.plural}"] = {"post": op("post"), "get": op("list")}
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"},
            "paths": paths, "components": {"schemas": schemas}}
