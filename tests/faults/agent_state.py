"""What a member agent has written for one slice, and when that is "half-applied" (the
member agent SIGKILLed mid-round, issue 14 item 3).

A round of the agent (slice/member/executor.py) writes, for a slice S in member M, in this
order: the gateway's key Secret `wgslice-gw-S-key` (before the rest, so the gateway finds
its key); the member finalizer on the MemberSlice (hub); the label `wgslice.io/slice=S` on
each of S's namespaces; the annotation `wgslice.io/slice-address` on each of their pods; the
ConfigMaps `wgslice-slice-S` (node agents) and `wgslice-gw-S` (gateway), the Deployment
`wgslice-gw-S` and an isolation NetworkPolicy per namespace (server-side apply); then the
MemberSlice status (hub). A SIGKILL can stop it between any two writes.

**Half-applied** (`half_applied`), for a slice the hub asks M to run, is any of:
- some but not all of {key Secret, gateway ConfigMap, slice ConfigMap, Deployment};
- a key Secret whose private key does not give the public key it announces, or a public key
  that differs from the one on the MemberSlice status or from what the peer's gateway
  config holds for M (a peer that can never complete a handshake);
- a namespace of S without the label, or labelled without its isolation policy;
- a running pod of S's namespaces without an address, with an address outside M's subnet,
  or two pods with one address;
- the MemberSlice without the member finalizer (the hub could release the range while the
  gateway still routes it), with a status not for its generation, not Ready, or with a
  tunnel that is not connected;
- not exactly one running gateway pod.
For a slice gone from the hub (`leftovers`): any object labelled for it, a labelled
namespace, an annotated pod, a MemberSlice or a gateway pod.

`member_state` is what the agent produced, normalised only where a correct agent may
differ between two runs (WireGuard keys are fresh per slice; uids, times and versions),
so two uninterrupted runs give equal states, and a killed run must give the same.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from typing import Any

import yaml
from fault_lab import ADDRESS, SYSTEM, WGS, FaultLab

from wgslice.gateway.keys import PrivateKey
from wgslice.slice.status import MEMBER_FINALIZER

SLICE_LABEL = "wgslice.io/slice"
KEY_RE = re.compile(r"[A-Za-z0-9+/]{43}=")


def _mask(obj: Any) -> Any:
    return json.loads(KEY_RE.sub("<key>", json.dumps(obj, sort_keys=True)))


def _labelled(fl: FaultLab, member: str, path: str, name: str) -> list[dict[str, Any]]:
    return fl.items(member, f"{path}?labelSelector={SLICE_LABEL}%3D{name}")


def _objects(fl: FaultLab, member: str, name: str) -> dict[str, dict[str, Any]]:
    base = f"/api/v1/namespaces/{SYSTEM}"
    out = {}
    for kind, path in (("ConfigMap", f"{base}/configmaps"), ("Secret", f"{base}/secrets"),
                       ("Deployment", f"/apis/apps/v1/namespaces/{SYSTEM}/deployments"),
                       ("NetworkPolicy", "/apis/networking.k8s.io/v1/networkpolicies")):
        for o in _labelled(fl, member, path, name):
            out[f"{kind} {o['metadata']['namespace']}/{o['metadata']['name']}"] = o
    # the key Secret carries the component label only (executor `_create_key`)
    for o in fl.items(member, f"{base}/secrets"):
        if o["metadata"]["name"] == f"wgslice-gw-{name}-key":
            out[f"Secret {SYSTEM}/{o['metadata']['name']}"] = o
    return out


def _gateway_pods(fl: FaultLab, member: str, name: str) -> list[dict[str, Any]]:
    return [p for p in _labelled(fl, member, f"/api/v1/namespaces/{SYSTEM}/pods", name)
            if not p["metadata"].get("deletionTimestamp")]


def member_state(fl: FaultLab, member: str, name: str, namespaces: list[str]
                 ) -> dict[str, Any]:
    """Everything the agent wrote for slice `name`, normalised (see the module's doc)."""
    state: dict[str, Any] = {}
    for ref, o in sorted(_objects(fl, member, name).items()):
        meta = o["metadata"]
        body: dict[str, Any] = {"labels": meta.get("labels") or {},
                                "annotations": {k: v for k, v in (meta.get("annotations")
                                                                  or {}).items()
                                                if not k.startswith("deployment.kubernetes")}}
        if ref.startswith("ConfigMap"):
            body["data"] = {k: yaml.safe_load(v) for k, v in (o.get("data") or {}).items()}
        elif ref.startswith("Secret"):
            body["fields"] = sorted(o.get("data") or {})
        else:
            body["spec"] = o.get("spec")
        state[ref] = body
    for ns in namespaces:
        nso = fl.get(member, f"/api/v1/namespaces/{ns}")
        state[f"Namespace {ns}"] = (nso["metadata"].get("labels") or {}).get(SLICE_LABEL)
        state[f"addresses {ns}"] = sorted(
            (p["metadata"].get("annotations") or {}).get(ADDRESS, "")
            for p in fl.lab.pods(member, "", ns) if p["status"].get("phase") == "Running")
    ms = fl.member_slice(member, name) or {}
    st = ms.get("status") or {}
    state["MemberSlice"] = {
        "finalizers": sorted((ms.get("metadata") or {}).get("finalizers") or []),
        "spec": ms.get("spec"),
        "status": {k: v for k, v in st.items()
                   if k not in ("tunnels", "conditions", "gateways")} | {
            "tunnels": sorted((t["peer"], t["state"]) for t in st.get("tunnels") or []),
            # every gateway without its counters and times (docs/redundancy.md)
            "gateways": [{k: v for k, v in g.items() if k != "tunnels"} | {
                "tunnels": sorted((t["peer"], t.get("gateway"), t["state"], t.get("routed"))
                                  for t in g.get("tunnels") or [])}
                for g in st.get("gateways") or []],
            "conditions": sorted((c["type"], c["status"], c.get("reason"))
                                 for c in st.get("conditions") or [])}}
    state["gateway pods"] = sorted(p["status"].get("phase", "") for p in
                                   _gateway_pods(fl, member, name))
    return dict(_mask(state))


def half_applied(fl: FaultLab, member: str, peer: str, name: str, namespaces: list[str]
                 ) -> list[str]:
    """What is half-applied for slice `name` in `member` (empty: converged)."""
    out = []
    objs = _objects(fl, member, name)
    gw, key = f"wgslice-gw-{name}", f"wgslice-gw-{name}-key"
    parts = {f"Secret {SYSTEM}/{key}", f"ConfigMap {SYSTEM}/{gw}",
             f"ConfigMap {SYSTEM}/wgslice-slice-{name}", f"Deployment {SYSTEM}/{gw}"}
    if parts - set(objs):
        out.append(f"missing {sorted(parts - set(objs))}")
    ms = fl.member_slice(member, name)
    if ms is None:
        return [*out, "no MemberSlice"]
    meta, st = ms["metadata"], ms.get("status") or {}
    secret = objs.get(f"Secret {SYSTEM}/{key}")
    if secret is not None:
        text = base64.b64decode(secret["data"]["privateKey"]).decode()
        public = PrivateKey.from_base64(text).public_key
        announced = (secret["metadata"].get("annotations") or {}).get("wgslice.io/public-key")
        peer_cm = fl.get(peer, f"/api/v1/namespaces/{SYSTEM}/configmaps/{gw}")
        peer_keys = [p.get("publicKey") for p in
                     (yaml.safe_load(peer_cm["data"]["config.yaml"]).get("peers") or [])
                     if p.get("member") == member]
        if not (public == announced == st.get("publicKey")) or peer_keys != [public]:
            out.append(f"keys disagree: Secret's {public}, announced {announced}, status "
                       f"{st.get('publicKey')}, {peer}'s gateway config {peer_keys}")
    subnet = ms["spec"]["subnet"]
    net = ipaddress.ip_network(subnet)
    seen: dict[str, str] = {}
    for ns in namespaces:
        label = (fl.get(member, f"/api/v1/namespaces/{ns}")["metadata"].get("labels")
                 or {}).get(SLICE_LABEL)
        if label != name:
            out.append(f"namespace {ns} labelled {label!r}")
        if f"NetworkPolicy {ns}/wgslice-isolation" not in objs:
            out.append(f"namespace {ns} without its isolation policy")
        for p in fl.lab.pods(member, "", ns):
            if p["status"].get("phase") != "Running" or p["metadata"].get("deletionTimestamp"):
                continue
            addr = (p["metadata"].get("annotations") or {}).get(ADDRESS, "")
            pod = f"{ns}/{p['metadata']['name']}"
            if not addr or ipaddress.ip_address(addr) not in net:
                out.append(f"pod {pod} address {addr!r} not in {subnet}")
            elif addr in seen:
                out.append(f"pods {seen[addr]} and {pod} share {addr}")
            seen[addr] = pod
    if MEMBER_FINALIZER not in (meta.get("finalizers") or []):
        out.append(f"MemberSlice finalizers {meta.get('finalizers')}")
    ready = {c["type"]: c["status"] for c in st.get("conditions") or []}.get("Ready")
    if st.get("observedGeneration") != meta.get("generation") or ready != "True":
        out.append(f"MemberSlice status: generation {st.get('observedGeneration')} of "
                   f"{meta.get('generation')}, Ready {ready}")
    tunnels = {t["peer"]: t["state"] for t in st.get("tunnels") or []}
    if tunnels != {peer: "connected"}:
        out.append(f"tunnels {tunnels}")
    phases = [p["status"].get("phase") for p in _gateway_pods(fl, member, name)]
    if phases != ["Running"]:
        out.append(f"gateway pods {phases}")
    return out


def leftovers(fl: FaultLab, member: str, name: str, namespaces: list[str]) -> list[str]:
    """What remains in `member` (and on the hub) of slice `name` after it was deleted."""
    out = [f"object {ref}" for ref in _objects(fl, member, name)]
    for ns in namespaces:
        label = (fl.get(member, f"/api/v1/namespaces/{ns}")["metadata"].get("labels")
                 or {}).get(SLICE_LABEL)
        if label:
            out.append(f"namespace {ns} labelled {label}")
        out += [f"pod {ns}/{p['metadata']['name']} annotated" for p in
                fl.lab.pods(member, "", ns) if (p["metadata"].get("annotations")
                                                 or {}).get(ADDRESS)]
    out += [f"MemberSlice {ms['metadata']['namespace']}/{ms['metadata']['name']}" for ms in
            fl.items("hub", f"{WGS}/memberslices") if ms["spec"].get("slice") == name]
    out += [f"gateway pod {p['metadata']['name']}" for p in _gateway_pods(fl, member, name)]
    return out
