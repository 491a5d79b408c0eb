"""`Kube`: wgslice's one door to a Kubernetes API server.

Every component (hub controller, member agent, node agent, gateway, dashboard, CLI) reads
and writes through this class; nothing else in the product builds a request. It holds:

- one way to write an object: server-side apply (`apply`, `apply_status`), forced, under
  the component's own field manager, so a field dropped from the desired object is removed
  from the live one, and two components never fight over each other's fields;
- merge patches only where apply cannot say it: finalizers guarded by a resourceVersion
  (`patch`), and annotations or labels on objects someone else owns;
- one error hierarchy (`wgslice.kube.errors`): NotFound, Conflict, Forbidden, Invalid, Gone,
  Unreachable, each naming the request and quoting the API server;
- the component's declared `Access`, checked before each request.

Bodies are the JSON the server sends, typed by `Resource[Body]` (`wgslice.kube.bodies`).
Built on the official client's ApiClient for what it does well (kubeconfig and in-cluster
credentials, TLS, token refresh); its generated per-kind methods and model classes are not
used, so every kind, wgslice's own included, goes through the same few lines.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from wgslice.kube.access import Access
from wgslice.kube.errors import (
    KubeError,
    NoCredentials,
    UndeclaredAccess,
    Unreachable,
    from_status,
)
from wgslice.kube.resources import Resource

log = logging.getLogger("wgslice.kube")
B = TypeVar("B")

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON


class Kube:
    """A component's connection to one API server.

    `field_manager` names the component in `managedFields` (kubectl shows it); `access` is
    its declared access (None: the caller's own credentials decide, as for the CLI).
    """

    def __init__(self, api_client: Any, *, field_manager: str,
                 access: Access | None = None, timeout: float = 30.0) -> None:
        self.api = api_client
        self.field_manager = field_manager
        self.access = access
        self.timeout = timeout
        #: (group, resource, verb) of every request made, for tests and `wgslice` debugging
        self.calls: set[tuple[str, str, str]] = set()

    @classmethod
    def connect(cls, *, field_manager: str, access: Access | None = None,
                kubeconfig: str | None = None, context: str | None = None,
                in_cluster: bool | None = None, timeout: float = 30.0) -> Kube:
        """The component's credentials, as kubectl would find them.

        `in_cluster` None (the default): in a pod its ServiceAccount, elsewhere (or with
        `kubeconfig`/`context` given) the kubeconfig (KUBECONFIG, ~/.kube/config); True: the
        ServiceAccount only; False: the kubeconfig only. Raises `NoCredentials` naming where
        it looked, so a CLI can tell the user which flag to pass.
        """
        from kubernetes import client, config

        if in_cluster or (in_cluster is None and kubeconfig is None and context is None):
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]  # untyped library
                return cls(client.ApiClient(), field_manager=field_manager, access=access,
                           timeout=timeout)
            except config.ConfigException as exc:
                if in_cluster:
                    raise NoCredentials("in-cluster credentials", str(exc)) from None
        try:
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]  # untyped library
                config_file=kubeconfig, context=context)
        except Exception as exc:  # ConfigException, FileNotFoundError, a broken YAML...
            where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise NoCredentials(f"kubeconfig {where} (context {context or 'current'})",
                                str(exc)) from None
        return cls(api, field_manager=field_manager, access=access, timeout=timeout)

    # -- reading ---------------------------------------------------------------------------
    def get(self, res: Resource[B], name: str, namespace: str | None = None,
            subresource: str | None = None) -> B:
        what = f"get {res.describe(namespace, name)}"
        out: B = self._json("GET", res, "get", what, res.path(namespace, name, subresource),
                            subresource=subresource)
        return out

    def find(self, res: Resource[B], name: str, namespace: str | None = None) -> B | None:
        """`get`, or None when the object does not exist."""
        from wgslice.kube.errors import NotFound

        try:
            return self.get(res, name, namespace)
        except NotFound:
            return None

    def list(self, res: Resource[B], namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             ) -> builtins.list[B]:
        """Every object (in `namespace`, or in all namespaces), items with kind/apiVersion
        filled in as `get` returns them."""
        return self.list_with_version(res, namespace, label_selector=label_selector,
                                      field_selector=field_selector)[0]

    def list_with_version(self, res: Resource[B], namespace: str | None = None, *,
                          label_selector: str | None = None,
                          field_selector: str | None = None,
                          ) -> tuple[builtins.list[B], str]:
        """`list`, and the list's resourceVersion: where a `watch` that keeps a cache of
        these objects up to date starts (list, then watch from here; on Gone, list again)."""
        query = _selectors(label_selector, field_selector)
        what = f"list {res.describe(namespace)}"
        body = self._json("GET", res, "list", what, res.path(namespace), query=query)
        items: builtins.list[B] = []
        for item in body.get("items") or []:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
            items.append(item)
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, res: Resource[B], namespace: str | None = None, *,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int = 60, resource_version: str | None = None,
              ) -> Iterator[tuple[str, B]]:
        """(type, object) for each change (ADDED, MODIFIED, DELETED, BOOKMARK) until the
        server ends the watch after about `timeout_seconds`. Gone (410) means list again."""
        query = _selectors(label_selector, field_selector)
        query += [("watch", "true"), ("timeoutSeconds", str(timeout_seconds)),
                  ("allowWatchBookmarks", "true")]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        what = f"watch {res.describe(namespace)}"
        resp = self._send("GET", res, "watch", what, res.path(namespace), query=query,
                          timeout=(10.0, timeout_seconds + 10.0))
        try:
            for line in _lines(resp.response):
                event = json.loads(line)
                obj: Any = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise from_status(what, int(obj.get("code") or 0),
                                      str(obj.get("message", "")), str(obj.get("reason", "")))
                typed: B = obj  # the server's JSON is the body type by contract
                yield str(event.get("type")), typed
        except (OSError, ValueError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise Unreachable(what, f"malformed watch event: {exc}") from exc
            raise Unreachable(what, str(exc)) from exc
        finally:
            resp.response.release_conn()

    # -- writing ---------------------------------------------------------------------------
    def apply(self, body: Mapping[str, Any], res: Resource[B] | None = None) -> B:
        """Server-side apply of the whole desired object under this component's field
        manager, forced: what this component set before and leaves out now is removed."""
        return self._apply(body, res, None)

    def apply_status(self, body: Mapping[str, Any], res: Resource[B]) -> B:
        """Server-side apply of `body["status"]` on the status subresource."""
        return self._apply(body, res, "status")

    def _apply(self, body: Mapping[str, Any], res: Resource[B] | None,
               sub: str | None) -> B:
        from wgslice.kube.resources import for_object

        r: Resource[Any] = res or for_object(body["apiVersion"], body["kind"])
        meta = body["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        full = {"apiVersion": r.api_version, "kind": r.kind, **body}
        what = f"apply {r.describe(ns, name)}{'/status' if sub else ''}"
        if sub is None and self.access is not None:
            # An apply that finds no object creates it, and RBAC then asks for `create` as
            # well as `patch`: require both, so a declaration that lacks `create` fails here,
            # in every test, not first in a real cluster.
            if not self.access.allows(r.group, r.plural, "create"):
                raise UndeclaredAccess(
                    f"{self.access.identity} does not declare create on "
                    f"{r.group or 'core'}/{r.plural} ({what}: an apply may create); add it "
                    "to its Access and chart")
            self.calls.add((r.group, r.plural, "create"))
        query = [("fieldManager", self.field_manager), ("force", "true")]
        out: B = self._json("PATCH", r, "patch", what, r.path(ns, name, sub), query=query,
                            body=full, content_type=APPLY_PATCH, subresource=sub)
        return out

    def create(self, res: Resource[B], body: Mapping[str, Any]) -> B:
        ns = body.get("metadata", {}).get("namespace")
        name = body.get("metadata", {}).get("name") or body.get("metadata", {}).get(
            "generateName", "")
        full = {"apiVersion": res.api_version, "kind": res.kind, **body}
        query = [("fieldManager", self.field_manager)]
        out: B = self._json("POST", res, "create", f"create {res.describe(ns, name)}",
                            res.path(ns), query=query, body=full)
        return out

    def create_subresource(self, res: Resource[Any], name: str, subresource: str,
                           body: Mapping[str, Any], namespace: str | None = None,
                           ) -> dict[str, Any]:
        """POST to a subresource of an object (a ServiceAccount's `token`): the answer."""
        what = f"create {res.describe(namespace, name)}/{subresource}"
        out: dict[str, Any] = self._json("POST", res, "create", what,
                                         res.path(namespace, name, subresource), body=dict(body),
                                         subresource=subresource)
        return out

    def replace(self, res: Resource[B], body: Mapping[str, Any]) -> B:
        """PUT: the whole object, guarded by its metadata.resourceVersion (a Lease renewal)."""
        meta = body["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        full = {"apiVersion": res.api_version, "kind": res.kind, **body}
        query = [("fieldManager", self.field_manager)]
        out: B = self._json("PUT", res, "update", f"update {res.describe(ns, name)}",
                            res.path(ns, name), query=query, body=full)
        return out

    def patch(self, res: Resource[B], name: str, patch: Mapping[str, Any],
              namespace: str | None = None, subresource: str | None = None) -> B:
        """JSON merge patch (RFC 7386): a None value removes the key. For finalizers (with
        metadata.resourceVersion, so a stale write is a Conflict) and for labels and
        annotations on objects another component owns."""
        what = f"patch {res.describe(namespace, name)}{'/' + subresource if subresource else ''}"
        query = [("fieldManager", self.field_manager)]
        out: B = self._json("PATCH", res, "patch", what, res.path(namespace, name, subresource),
                            query=query, body=dict(patch), content_type=MERGE_PATCH,
                            subresource=subresource)
        return out

    def delete(self, res: Resource[Any], name: str, namespace: str | None = None, *,
               missing_ok: bool = True) -> bool:
        """Deletes (in the background); False if it was already gone and `missing_ok`."""
        from wgslice.kube.errors import NotFound

        try:
            self._json("DELETE", res, "delete", f"delete {res.describe(namespace, name)}",
                       res.path(namespace, name),
                       body={"kind": "DeleteOptions", "apiVersion": "v1",
                             "propagationPolicy": "Background"})
        except NotFound:
            if not missing_ok:
                raise
            return False
        return True

    # -- the wire ---------------------------------------------------------------------------
    def _json(self, method: str, res: Resource[Any], verb: str, what: str, path: str, *,
              query: builtins.list[tuple[str, str]] | None = None, body: Any = None,
              content_type: str = "application/json", subresource: str | None = None) -> Any:
        resp = self._send(method, res, verb, what, path, query=query, body=body,
                          content_type=content_type, subresource=subresource)
        try:
            data = resp.read()
        except OSError as exc:
            raise Unreachable(what, str(exc)) from exc
        try:
            return json.loads(data) if data else {}
        except ValueError as exc:
            raise Unreachable(what, f"not JSON: {data[:200]!r}") from exc

    def _send(self, method: str, res: Resource[Any], verb: str, what: str, path: str, *,
              query: builtins.list[tuple[str, str]] | None = None, body: Any = None,
              content_type: str = "application/json", subresource: str | None = None,
              timeout: Any = None) -> Any:
        resource = res.plural + (f"/{subresource}" if subresource else "")
        if self.access is not None and not self.access.allows(res.group, resource, verb):
            raise UndeclaredAccess(
                f"{self.access.identity} does not declare {verb} on "
                f"{res.group or 'core'}/{resource} ({what}); add it to its Access and chart")
        self.calls.add((res.group, resource, verb))
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            req = self.api.param_serialize(method, path, query_params=query or None,
                                           header_params=headers, body=body,
                                           auth_settings=["BearerToken"])
            resp = self.api.call_api(*req, _request_timeout=timeout or self.timeout)
        except KubeError:
            raise
        except Exception as exc:  # urllib3's and the client's transport errors alike
            status = getattr(exc, "status", 0) or 0
            raise Unreachable(what, _short(exc), status=int(status)) from exc
        if 200 <= resp.status < 300:
            return resp
        data = resp.read() or b""
        try:
            status_body = json.loads(data)
        except ValueError:
            status_body = {"message": data.decode(errors="replace")[:500]}
        raise from_status(what, resp.status, str(status_body.get("message") or resp.reason),
                          str(status_body.get("reason") or ""))


def kubeconfig_contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """The context names of a kubeconfig and its current one; ([], None) if it cannot be
    read (the caller offers what it has, e.g. the dashboard's context picker)."""
    from kubernetes import config

    try:
        all_, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]  # untyped library
            config_file=kubeconfig)
    except Exception:
        return [], None
    return [str(c["name"]) for c in all_], (current or {}).get("name")


def _selectors(label: str | None, field: str | None) -> list[tuple[str, str]]:
    q = []
    if label:
        q.append(("labelSelector", label))
    if field:
        q.append(("fieldSelector", field))
    return q


def _lines(response: Any) -> Iterator[bytes]:
    """Newline-delimited JSON from a streaming urllib3 response."""
    buf = b""
    for chunk in response.stream(65536, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", "") or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
