"""`wgslice verify --slice S`: the pairwise reachability matrix, from probe pods.

Per member, in a namespace of the slice: a ServiceAccount allowed to get/patch one
ConfigMap, that ConfigMap, and a pod running `wgslice probe-agent` (probeagent.py). Steps:
wait for each pod's slice address (the member agent's annotation), write it into the pod's
ConfigMap, wait until every pod has bound it, write the targets, wait for the results,
delete everything (also on failure or Ctrl-C). No exec, no logs subresource, no Secret.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from wgslice.errors import UserError
from wgslice.kube import Kube, KubeError
from wgslice.kube import resources as r
from wgslice.kube.resources import Resource
from wgslice.slice.inspect.hub import api_client, read_snapshot

ADDRESS_ANNOTATION = "wgslice.io/slice-address"
Say = Callable[[str], None]


def pick_namespace(slice_obj: Mapping[str, Any], members: list[str]) -> str:
    for ns in (slice_obj.get("spec") or {}).get("namespaces") or []:
        if set(ns.get("members") or members) >= set(members):
            return ns["name"]
    raise UserError(f"slice {slice_obj['metadata']['name']} has no namespace present in every "
                    "member: add one, or pass --namespace")


def objects(run_id: str, member: str, namespace: str, image: str, timeout: float
            ) -> list[dict[str, Any]]:
    name = f"wgslice-verify-{run_id}"
    labels = {"app.kubernetes.io/name": "wgslice-verify", "wgslice.io/verify": run_id}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": probe_rules(name)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"member": member}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {
            "serviceAccountName": name, "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "probe", "image": image,
                "command": ["wgslice", "probe-agent", "--configmap", name, "--member", member,
                            "--timeout", str(int(timeout))],
                "env": [{"name": "POD_NAMESPACE",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
            }]}},
    ]


def probe_rules(name: str) -> list[dict[str, Any]]:
    """The probe pod's Role rules: what probeagent.ACCESS declares, on its one object."""
    from wgslice.slice.inspect.probeagent import ACCESS

    rules: dict[tuple[str, str], list[str]] = {}
    for group, resource, verb in sorted(ACCESS.grants):
        rules.setdefault((group, resource), []).append(verb)
    return [{"apiGroups": [g], "resources": [res], "resourceNames": [name], "verbs": verbs}
            for (g, res), verbs in rules.items()]


def matrix(slice_name: str, members: list[str], addresses: Mapping[str, str],
           results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The document `verify -o json` prints (pure)."""
    table = {src: {dst: results.get(src, {}).get(dst) for dst in members if dst != src}
             for src in members}
    pairs = sum(1 for s in members for d in members if s != d)
    ok = sum(1 for s in members for d in members if s != d and (table[s].get(d) or {}).get("ok"))
    return {"slice": slice_name, "members": members, "addresses": dict(addresses),
            "matrix": table, "pairs": pairs, "reachable": ok}


class _Member:
    """One member's probe objects, through the user's own credentials (field manager
    ``wgslice``): created, read and patched one by one, deleted on the way out."""

    KINDS: ClassVar[dict[str, Resource[Any]]] = {
        "ServiceAccount": r.SERVICEACCOUNTS, "Role": r.ROLES, "RoleBinding": r.ROLEBINDINGS,
        "ConfigMap": r.CONFIGMAPS, "Pod": r.PODS,
    }

    def __init__(self, name: str, kube: Kube, namespace: str, run_id: str) -> None:
        self.name, self.ns, self.obj = name, namespace, f"wgslice-verify-{run_id}"
        self.kube = kube

    def create(self, objs: list[dict[str, Any]]) -> None:
        try:
            self.kube.get(r.NAMESPACES, self.ns)
        except KubeError as exc:
            raise UserError(f"{self.name}: namespace {self.ns} missing: {exc.message}; is "
                            "the slice attached there?") from None
        for o in objs:
            self.kube.create(self.KINDS[o["kind"]], o)

    def address(self) -> str:
        pod = self.kube.get(r.PODS, self.obj, self.ns)
        return (pod.get("metadata", {}).get("annotations") or {}).get(ADDRESS_ANNOTATION, "")

    def data(self) -> dict[str, str]:
        return self.kube.get(r.CONFIGMAPS, self.obj, self.ns).get("data") or {}

    def patch(self, data: dict[str, str]) -> None:
        self.kube.patch(r.CONFIGMAPS, self.obj, {"data": data}, self.ns)

    def cleanup(self) -> None:
        for res in (r.PODS, r.CONFIGMAPS, r.ROLEBINDINGS, r.ROLES, r.SERVICEACCOUNTS):
            with contextlib.suppress(KubeError, OSError):
                self.kube.delete(res, self.obj, self.ns)


def _wait(what: str, fn: Callable[[], bool], deadline: float) -> None:
    while not fn():
        if time.monotonic() > deadline:
            raise UserError(f"verify: timed out waiting for {what}")
        time.sleep(0.5)


def verify(kubeconfig: str | None, context: str | None, member_contexts: Mapping[str, str],
           slice_name: str, namespace: str | None, image: str, timeout: float,
           say: Say) -> dict[str, Any]:
    snap = read_snapshot(api_client(kubeconfig, context), events=False)
    s = next((x for x in snap.slices if x["metadata"]["name"] == slice_name), None)
    if s is None:
        names = ", ".join(sorted(x["metadata"]["name"] for x in snap.slices)) or "none"
        raise UserError(f"no slice {slice_name!r} in the hub; slices: {names}")
    members = sorted((s.get("spec") or {}).get("members") or [])
    missing = [m for m in members if m not in member_contexts]
    if missing:
        raise UserError(f"no kubeconfig context for member(s) {', '.join(missing)}: pass "
                        "--member-context MEMBER=CONTEXT")
    ns = namespace or pick_namespace(s, members)
    run_id = secrets.token_hex(3)
    deadline = time.monotonic() + timeout
    ms = [_Member(m, api_client(kubeconfig, member_contexts[m]), ns, run_id) for m in members]
    say(f"probe pods wgslice-verify-{run_id} in namespace {ns} of {', '.join(members)}")
    try:
        for m in ms:
            m.create(objects(run_id, m.name, ns, image, timeout))
        addresses: dict[str, str] = {}

        def addressed() -> bool:
            for m in ms:
                if m.name not in addresses and (a := m.address()):
                    addresses[m.name] = a
                    m.patch({"self": a})
            return len(addresses) == len(ms)

        _wait("slice addresses of the probe pods (is the member agent running?)", addressed,
              deadline)
        say("slice addresses: " + ", ".join(f"{k}={v}" for k, v in sorted(addresses.items())))
        _wait("the probe pods to bind their slice addresses (node agents?)",
              lambda: all(m.data().get("ready") == "true" for m in ms), deadline)
        for m in ms:
            m.patch({"targets": json.dumps({k: v for k, v in addresses.items() if k != m.name})})
        results: dict[str, dict[str, Any]] = {}

        def reported() -> bool:
            for m in ms:
                if m.name not in results and (r := m.data().get("result")):
                    results[m.name] = json.loads(r)
            return len(results) == len(ms)

        try:
            _wait("probe results", reported, deadline + 15)
        except UserError:
            say("some probe pods did not report; their pairs count as failed")
        return matrix(slice_name, members, addresses, results)
    finally:
        for m in ms:
            m.cleanup()
        say("probe pods removed")
