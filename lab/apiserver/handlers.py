"""HTTP layer: route a request path to a resource, authenticate, authorize, run the verb.

One catch-all aiohttp handler parses Kubernetes' URL grammar itself
(`/api/v1[/watch][/namespaces/NS]/PLURAL[/NAME[/SUB]]`, same under `/apis/GROUP/VERSION`),
because the set of resources changes at run time as CRDs come and go.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import discovery, errors, protobuf, special, tables, watch
from .auth import Authenticator, UserInfo, sa_user
from .rbac import Attributes, Authorizer, forbidden_message
from .resources import VIRTUAL_GROUPS, Registry, ResourceType
from .selectors import SelectorError, name_from_fields, parse_fields, parse_labels
from .store import Obj
from .verbs import Api

log = logging.getLogger(__name__)
UNAUTHENTICATED_PATHS = ("/version", "/healthz", "/livez", "/readyz")
PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclass
class Target:
    rt: ResourceType
    ns: str | None  # None: all namespaces (collection reads) or cluster-scoped
    name: str
    sub: str
    watch: bool


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json")


def _not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                           {})


class Handler:
    def __init__(self, api: Api, authn: Authenticator, authz: Authorizer,
                 bookmark_interval: float = 10.0) -> None:
        self.api = api
        self.registry: Registry = api.registry
        self.authn = authn
        self.authz = authz
        self.bookmark_interval = bookmark_interval

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except errors.ApiError as e:
            return _json(e.status(), e.code)
        except Exception as e:  # keep the server up; report like kube-apiserver does
            log.exception("internal error on %s %s", request.method, request.path)
            return _json(errors.ApiError(500, "InternalError", f"Internal error: {e}").status(),
                         500)

    # -- routing ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.VERSION)
        user = self.authn.authenticate(request.headers.get("Authorization"))
        if user is None:
            raise errors.unauthorized()
        if "Impersonate-User" in request.headers:
            user = self._impersonate(request, user)
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            return self._non_resource(request, user, path, parts)
        if parts[0] == "api":
            group, rest = "", parts[1:]
            if not rest:
                return _json(discovery.api_versions(request.host))
        else:
            if len(parts) == 1:
                return _json(discovery.api_group_list(self.registry))
            group, rest = parts[1], parts[2:]
            if not rest:
                doc = discovery.api_group(self.registry, group)
                if doc is None:
                    raise _not_found_path()
                return _json(doc)
        version, rest = rest[0], rest[1:]
        if not rest:
            doc = discovery.resource_list(self.registry, group, version)
            if doc is None:
                raise _not_found_path()
            return _json(doc)
        target = self._target(group, version, rest)
        return await self._resource(request, user, target)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        is_watch = rest[0] == "watch"
        if is_watch:
            rest = rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _not_found_path()
        rt = self.registry.get(group, version, rest[0])
        if rt is None or (ns is not None and not rt.namespaced):
            raise _not_found_path()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources:
            raise _not_found_path()
        if rt.namespaced and ns is None and name:
            raise _not_found_path()
        return Target(rt, ns, name, sub, is_watch)

    def _non_resource(self, request: web.Request, user: UserInfo, path: str,
                      parts: list[str]) -> web.Response:
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return _json(discovery.openapi_v3_index(self.registry))
            rest = parts[2:]
            group, version = ("", rest[1]) if rest[0] == "api" and len(rest) == 2 else (
                (rest[1], rest[2]) if rest[0] == "apis" and len(rest) == 3 else ("", ""))
            doc = discovery.openapi_v3_doc(self.registry, group, version) if version else None
            if doc is not None:
                return _json(doc)
        raise _not_found_path()

    def _impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """`kubectl --as/--as-group`: act as another user if RBAC allows `impersonate`."""
        name = request.headers["Impersonate-User"]
        groups = tuple(request.headers.getall("Impersonate-Group", []))
        checks = [("serviceaccounts", name.split(":")[3], name.split(":")[2])
                  if name.startswith("system:serviceaccount:") and name.count(":") == 3
                  else ("users", name, "")] + [("groups", g, "") for g in groups]
        for resource, rname, ns in checks:
            a = Attributes(verb="impersonate", resource=resource, name=rname, namespace=ns)
            if not self.authz.allowed(user, a):
                raise errors.ApiError(403, "Forbidden", forbidden_message(user, a, resource),
                                      {"name": rname, "kind": resource})
        if checks[0][0] == "serviceaccounts":
            groups = (*sa_user(checks[0][2], checks[0][1]).groups, *groups)
        return UserInfo(name, tuple(dict.fromkeys((*groups, "system:authenticated"))),
                        request.headers.get("Impersonate-Uid", ""))

    # -- authorization -------------------------------------------------------------------------
    def _authorize(self, user: UserInfo, verb: str, t: Target) -> None:
        a = Attributes(verb=verb, group=t.rt.group, resource=t.rt.plural, subresource=t.sub,
                       namespace=t.ns or "", name=t.name)
        if not self.authz.allowed(user, a):
            raise errors.ApiError(403, "Forbidden",
                                  forbidden_message(user, a, t.rt.group_resource),
                                  {"name": t.name, "group": t.rt.group, "kind": t.rt.plural}
                                  if t.name else {"group": t.rt.group, "kind": t.rt.plural})

    # -- bodies ----------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> tuple[str, Any]:
        ctype = (request.headers.get("Content-Type") or "application/json").split(";")[0]
        raw = await request.read()
        if ctype.startswith(PROTOBUF):
            try:
                return "application/json", protobuf.decode(raw)
            except (protobuf.ProtobufError, ValueError, KeyError) as e:
                raise errors.unsupported_media(
                    f"the lab API server cannot decode this protobuf body ({e}); kubectl "
                    "create/run send protobuf for built-in kinds: use `kubectl apply -f FILE` "
                    "(JSON) instead") from None
        if not raw:
            return ctype, None
        try:
            if ctype in ("application/apply-patch+yaml", "application/yaml"):
                try:
                    return ctype, json.loads(raw)
                except ValueError:
                    return ctype, yaml.safe_load(raw)
            return ctype, json.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding request body: {e}") from None

    def _output(self, rt: ResourceType, obj: Obj) -> Obj:
        if obj.get("apiVersion") != rt.api_version:
            return {**obj, "apiVersion": rt.api_version}
        return obj

    def _respond(self, request: web.Request, rt: ResourceType, obj: Obj,
                 status: int = 200) -> web.Response:
        out = self._output(rt, obj)
        if tables.wants_table(request.headers.get("Accept", "")) and out.get("metadata"):
            return _json(tables.table(rt, [out], out["metadata"].get("resourceVersion", ""),
                                      request.query.get("includeObject", "Metadata")), status)
        return _json(out, status)

    # -- verbs -----------------------------------------------------------------------------------
    async def _resource(self, request: web.Request, user: UserInfo,
                        t: Target) -> web.StreamResponse:
        m = request.method
        q = request.query
        dry = bool(q.get("dryRun"))
        strict = q.get("fieldValidation") == "Strict"
        rt, ns = t.rt, t.ns or ""
        if t.watch or (m == "GET" and not t.name and q.get("watch") in ("true", "1")):
            self._authorize(user, "watch", t)
            return await self._watch(request, t)
        if m == "GET":
            self._authorize(user, "get" if t.name else "list", t)
            if not t.name:
                return self._list(request, t)
            if t.sub == "scale":
                return _json(special.get_scale(self.api, rt, ns, t.name))
            return self._respond(request, rt, self.api.get(rt, ns, t.name))
        if m == "POST":
            verb = "create"
            self._authorize(user, verb, t)
            _, body = await self._body(request)
            if rt.group in VIRTUAL_GROUPS:
                return _json(self._review(user, rt, body or {}), 201)
            if t.sub == "token":
                return _json(special.token_request(self.api, self.authn, ns, t.name,
                                                   body or {}), 201)
            if t.sub == "binding":
                return _json(special.bind_pod(self.api, rt, ns, t.name, body or {}), 201)
            if t.name or (rt.namespaced and t.ns is None):
                raise errors.method_not_allowed()
            return self._respond(request, rt, self.api.create(rt, ns, body, dry, strict), 201)
        if m in ("PUT", "PATCH"):
            if not t.name:
                raise errors.method_not_allowed()
            ctype, body = await self._body(request)
            verb = "update" if m == "PUT" else "patch"
            self._authorize(user, verb, t)
            existed = self.api.store.get(rt.key, ns, t.name) is not None
            if t.sub == "scale":
                if m == "PATCH":
                    cur = special.get_scale(self.api, rt, ns, t.name)
                    from .patch import merge_patch
                    body = merge_patch(cur, body or {})
                return _json(special.set_scale(self.api, rt, ns, t.name, body or {}))
            sub = t.sub or None
            if m == "PUT":
                obj = self.api.update(rt, ns, t.name, body, sub, dry, strict)
            else:
                obj = self.api.patch(rt, ns, t.name, ctype, body, sub,
                                     q.get("fieldManager", ""), dry, strict,
                                     q.get("force") in ("true", "1"))
            return self._respond(request, rt, obj, 200 if existed else 201)
        if m == "DELETE":
            self._authorize(user, "delete" if t.name else "deletecollection", t)
            _, body = await self._body(request) if request.can_read_body else ("", None)
            opts = dict(body) if isinstance(body, dict) else {}
            for k in ("propagationPolicy", "gracePeriodSeconds"):
                if k in q:
                    opts[k] = int(q[k]) if k == "gracePeriodSeconds" else q[k]
            if not t.name:
                return self._delete_collection(request, t, opts, dry)
            obj = self.api.delete(rt, ns, t.name, opts, dry)
            # kube-apiserver answers 200 even when finalizers keep the object; 202 only when
            # the client set orphanDependents=false and the object is not gone yet.
            still = self.api.store.get(rt.key, ns, t.name) is not None
            accepted = still and not dry and opts.get("orphanDependents") is False
            return self._respond(request, rt, obj, 202 if accepted else 200)
        raise errors.method_not_allowed()

    def _selected(self, request: web.Request, t: Target) -> list[Obj]:
        q = request.query
        try:
            lpred = parse_labels(q.get("labelSelector"))
            fpred = parse_fields(q.get("fieldSelector"))
        except SelectorError as e:
            raise errors.bad_request(str(e)) from None
        only = name_from_fields(q.get("fieldSelector"))
        if only is not None:
            if t.ns is not None or not t.rt.namespaced:
                one = self.api.store.get(t.rt.key, t.ns or "", only)
                objs = [one] if one is not None else []
            else:
                objs = [o for o in self.api.store.iter(t.rt.key) if
                        o["metadata"]["name"] == only]
        else:
            objs = list(self.api.store.iter(t.rt.key, t.ns if t.rt.namespaced else ""))
        return [o for o in objs if (lpred is None or lpred(o)) and (fpred is None or fpred(o))]

    def _list(self, request: web.Request, t: Target) -> web.Response:
        rv = str(self.api.store.rv)
        objs = self._selected(request, t)
        q = request.query
        cont = ""
        start = 0
        if q.get("continue"):
            try:
                start = int(base64.b64decode(q["continue"]).decode())
            except ValueError:
                raise errors.bad_request("invalid continue token") from None
        limit = int(q.get("limit") or 0)
        if start:
            objs = objs[start:]
        if limit and len(objs) > limit:
            objs = objs[:limit]
            cont = base64.b64encode(str(start + limit).encode()).decode()
        items = [self._output(t.rt, o) for o in objs]
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(t.rt, items, rv, q.get("includeObject", "Metadata"),
                                      cont))
        md: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            md["continue"] = cont
        return _json({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version, "metadata": md,
                      "items": items})

    def _delete_collection(self, request: web.Request, t: Target, opts: dict[str, Any],
                           dry: bool) -> web.Response:
        deleted = []
        for obj in self._selected(request, t):
            md = obj["metadata"]
            try:
                deleted.append(self.api.delete(t.rt, md.get("namespace", ""), md["name"],
                                               opts, dry))
            except errors.ApiError as e:
                if e.code != 404:
                    raise
        return _json({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version,
                      "metadata": {"resourceVersion": str(self.api.store.rv)},
                      "items": [self._output(t.rt, o) for o in deleted]})

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        try:
            lpred = parse_labels(q.get("labelSelector"))
            fsel = q.get("fieldSelector")
            if t.name:
                fsel = f"metadata.name={t.name}" + (f",{fsel}" if fsel else "")
            fpred = parse_fields(fsel)
        except SelectorError as e:
            raise errors.bad_request(str(e)) from None

        def accept(o: Obj) -> bool:
            return (lpred is None or lpred(o)) and (fpred is None or fpred(o))

        ns = t.ns if t.rt.namespaced else ""
        return await watch.serve(request, self.api.store, t.rt, ns, accept,
                                 lambda o: self._output(t.rt, o), self.bookmark_interval,
                                 tables.wants_table(request.headers.get("Accept", "")))

    def _review(self, user: UserInfo, rt: ResourceType, body: dict[str, Any]) -> Any:
        if rt.plural in ("selfsubjectaccessreviews", "subjectaccessreviews"):
            return special.access_review(self.authz, user, body, rt.kind)
        if rt.plural == "selfsubjectrulesreviews":
            return special.rules_review(self.authz, user, body)
        if rt.plural == "selfsubjectreviews":
            return special.self_subject_review(user)
        return special.token_review(self.authn, body)
