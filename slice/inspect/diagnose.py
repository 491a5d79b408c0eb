"""`wgslice diagnose`: gather from the hub and the members, then run the pure checks.

Member clusters are read with the kubeconfig context named after each member (the lab's
convention) or one given with --member-context. Node routing tables are read where this
machine can see the nodes: when the member's kubeconfig cluster carries the extension
NODE_NETNS_EXTENSION (each node is a network namespace on this machine: the lab writes it)
and we are root; elsewhere that check is skipped with the command to run on a node.
Never reads a Secret.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from wgslice.errors import UserError
from wgslice.kube import KubeError
from wgslice.kube import resources as r
from wgslice.slice.inspect import checks as c
from wgslice.slice.inspect.hub import api_client, read_snapshot

SYSTEM_NAMESPACE = "wgslice-system"
NodeNetns = Callable[[str], str | None]  # node -> its network namespace here, or None
#: Kubeconfig cluster extension: ``{"nodes": {NODE: NETNS}}``, the network namespace on this
#: machine of each node of that cluster (the lab writes it into its kubeconfig).
NODE_NETNS_EXTENSION = "wgslice.io/node-netns"


def _kubeconfig_docs(kubeconfig: str | None) -> list[dict[str, Any]]:
    if kubeconfig:
        files = [kubeconfig]
    else:
        env = os.environ.get("KUBECONFIG", "")
        files = [f for f in env.split(os.pathsep) if f] if env else \
            [str(Path.home() / ".kube" / "config")]
    docs = []
    for f in files:
        try:
            doc = yaml.safe_load(Path(f).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def node_netns_map(kubeconfig: str | None, context: str | None) -> dict[str, str] | None:
    """The NODE_NETNS_EXTENSION of `context`'s cluster (default: the current context), or
    None. Several kubeconfig files merge as kubectl merges them: the first of a name wins."""
    docs = _kubeconfig_docs(kubeconfig)
    named: dict[str, dict[str, dict[str, Any]]] = {"contexts": {}, "clusters": {}}
    current = next((d["current-context"] for d in docs if d.get("current-context")), None)
    for d in docs:
        for kind, key in (("contexts", "context"), ("clusters", "cluster")):
            for entry in d.get(kind) or []:
                if isinstance(entry, dict) and isinstance(entry.get(key), dict):
                    named[kind].setdefault(str(entry.get("name")), entry[key])
    ctx = named["contexts"].get(str(context or current))
    cluster = named["clusters"].get(str((ctx or {}).get("cluster")))
    for ext in (cluster or {}).get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == NODE_NETNS_EXTENSION:
            nodes = (ext.get("extension") or {}).get("nodes")
            if isinstance(nodes, dict):
                return {str(k): str(v) for k, v in nodes.items()}
    return None


def node_access(kubeconfig: str | None, context: str | None) -> tuple[NodeNetns | None, str]:
    """How to reach the nodes of the cluster of `context` from here, or why not."""
    nodes = node_netns_map(kubeconfig, context)
    if nodes is None:
        return None, (f"the kubeconfig's cluster has no {NODE_NETNS_EXTENSION} extension; "
                      "node access needs the lab or a node shell")
    if os.geteuid() != 0:
        return None, "reading the nodes' network namespaces needs root"
    return nodes.get, ""


def _ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "netns", "exec", netns, "ip", "-j", *args],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip() or f"ip {' '.join(args)} failed")
    return json.loads(out.stdout or "[]")


def gather_member(kubeconfig: str | None, context: str | None, sname: str, member: str,
                  node_netns: NodeNetns | None, node_note: str) -> c.MemberFacts:
    if not context:
        return c.MemberFacts(reachable=None)
    try:
        kube = api_client(kubeconfig, context)
        pods = kube.list(r.PODS, SYSTEM_NAMESPACE, label_selector=f"wgslice.io/slice={sname}")
        cms = {cm["metadata"]["name"]: cm.get("data") or {}
               for cm in kube.list(r.CONFIGMAPS, SYSTEM_NAMESPACE)}
    except UserError as exc:
        return c.MemberFacts(reachable=False, error=str(exc))
    except KubeError as exc:
        return c.MemberFacts(reachable=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
    facts = c.MemberFacts(reachable=True, node_note=node_note)
    for p in pods:
        meta, status = p.get("metadata") or {}, p.get("status") or {}
        if (meta.get("labels") or {}).get("app.kubernetes.io/name") != "wgslice-gateway":
            continue
        ready = any(x.get("type") == "Ready" and x.get("status") == "True"
                    for x in status.get("conditions") or [])
        facts.gateway_pods.append({"name": meta.get("name", ""), "phase": status.get("phase"),
                                   "ready": ready and not meta.get("deletionTimestamp")})
    gw = cms.get(f"wgslice-gw-{sname}", {}).get("config.yaml")
    if gw:
        cfg = yaml.safe_load(gw) or {}
        facts.gateway_peer_keys = {p.get("member", ""): p.get("publicKey", "")
                                   for p in cfg.get("peers") or []}
    sl = cms.get(f"wgslice-slice-{sname}", {}).get("slice.yaml")
    facts.slice_config = (yaml.safe_load(sl) or {}) if sl else None
    if facts.slice_config is not None and node_netns is not None:
        facts.nodes = {}
        table = str(facts.slice_config.get("table"))
        for node in sorted(facts.slice_config.get("nodes") or {}):
            ns = node_netns(node)
            if ns is None:
                facts.nodes[node] = {"error": f"node not in the kubeconfig's "
                                              f"{NODE_NETNS_EXTENSION} extension"}
                continue
            try:
                facts.nodes[node] = {"routes": _ip_json(ns, "route", "show", "table", table),
                                     "rules": _ip_json(ns, "rule")}
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
                facts.nodes[node] = {"error": str(exc)}
    return facts


def diagnose(kubeconfig: str | None, context: str | None, member_contexts: Mapping[str, str],
             slice_name: str | None) -> list[dict[str, Any]]:
    try:
        snap = read_snapshot(api_client(kubeconfig, context))
    except UserError as exc:
        return [c.result("hub", "fail", str(exc), "pass --kubeconfig/--context for the hub")]
    except Exception as exc:
        return [c.result("hub", "fail", f"hub {context or '(current context)'} not readable: "
                         f"{type(exc).__name__}: {str(exc)[:200]}",
                         "check the hub context's address and credentials, and that the "
                         "wgslice CRDs are installed (`kubectl get crd slices.wgslice.io`)")]
    names = sorted((s.get("metadata") or {}).get("name", "") for s in snap.slices)
    if slice_name and slice_name not in names:
        raise UserError(f"no slice {slice_name!r} in the hub; slices: {', '.join(names) or 'none'}")
    slices = [slice_name] if slice_name else names
    out = [c.result("hub", "ok", f"hub ({context or 'current context'}) reachable: "
                    f"{len(names)} slice(s), {len(snap.members)} member(s)")]
    now = dt.datetime.now(dt.UTC)
    out += c.hub_checks(snap, slices, now)
    access: dict[str, tuple[NodeNetns | None, str]] = {}
    for sname in slices:
        mss = c.member_slices_of(snap, sname)
        published = {m: (ms.get("status") or {}).get("publicKey", "") for m, ms in mss.items()}
        s = next(x for x in snap.slices if x["metadata"]["name"] == sname)
        for m in (s.get("spec") or {}).get("members") or []:
            ctx = member_contexts.get(m)
            if ctx and ctx not in access:
                access[ctx] = node_access(kubeconfig, ctx)
            node_netns, note = access.get(ctx or "", (None, ""))
            facts = gather_member(kubeconfig, ctx, sname, m, node_netns, note)
            out += c.member_checks(sname, m, facts, published)
        out += c.service_checks(sname, snap)
    return out
