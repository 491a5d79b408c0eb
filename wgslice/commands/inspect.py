"""`wgslice status|tunnels|graph|diagnose|verify|dashboard` (and `kubectl slice ...`).

All read the hub (`--kubeconfig`, `--context`, default the current context); `diagnose` and
`verify` also use the member clusters' contexts (named after the members, as in the lab, or
given with `--member-context MEMBER=CONTEXT`). Output: `-o table|json|yaml`; colour only on
a terminal (and never with NO_COLOR set).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from wgslice.errors import UserError

if TYPE_CHECKING:
    from wgslice.kube import Kube
    from wgslice.slice.dashboard.hubview import Snapshot
    from wgslice.slice.dashboard.source import State

OUTPUTS = ("table", "json", "yaml")


def _common(p: argparse.ArgumentParser, output: bool = True) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="the hub's context (default: the current context)")
    if output:
        p.add_argument("-o", "--output", choices=OUTPUTS, default="table")


def _member_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--member-context", action="append", default=[], metavar="MEMBER=CONTEXT",
                   help="context of a member cluster (repeatable); default: a context named "
                   "after the member, if the kubeconfig has one")


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="slices and members at a glance",
                       description="Slices (CIDR, tunnels up/degraded/down, Ready) and member "
                       "clusters (heartbeat, agent version) as the hub sees them.")
    _common(p)
    p.set_defaults(func=run_status)

    p = sub.add_parser("tunnels", help="every tunnel: state, handshake, RTT, loss, bytes",
                       description="One row per tunnel. Rates need two samples: the command "
                       "reads the hub twice, --sample seconds apart.")
    _common(p)
    p.add_argument("--slice", help="only this slice")
    p.add_argument("--sample", type=float, default=2.5, metavar="SECONDS",
                   help="seconds between the two reads used for rates (0: no rates)")
    p.set_defaults(func=run_tunnels)

    p = sub.add_parser("graph", help="the tunnel topology (dot, mermaid or ascii)")
    _common(p)
    p.add_argument("--slice", help="only this slice")
    p.add_argument("--format", choices=("ascii", "dot", "mermaid"), default="ascii",
                   help="text format for -o table (default ascii)")
    p.set_defaults(func=run_graph)

    p = sub.add_parser("diagnose", help="check a slice end to end and say what to fix",
                       description="Hub reachable, heartbeats, gateway pods, public keys, "
                       "handshakes, MTU, node routes and rules, overlapping CIDRs. Exits 1 "
                       "when a check fails.")
    _common(p)
    _member_opts(p)
    p.add_argument("--slice", help="only this slice")
    p.add_argument("--name", metavar="NAME",
                   help="why a clusterset name (<svc>.<ns>.svc.clusterset.local) does or does "
                   "not resolve; with --member, as seen from that member")
    p.add_argument("--member", help="with --name: the member the query is made in")
    p.set_defaults(func=run_diagnose)

    p = sub.add_parser("verify", help="pairwise reachability between members, with probe pods",
                       description="Starts a short-lived probe pod per member in a slice "
                       "namespace, lets each reach the others over the slice, prints the "
                       "matrix and removes everything it created. Exits 1 when a pair fails.")
    _common(p)
    _member_opts(p)
    p.add_argument("--slice", required=True)
    p.add_argument("--namespace", help="slice namespace for the probe pods (default: the "
                   "first namespace of the slice present in every member)")
    p.add_argument("--image", help="image of the probe pods (default wgslice/wgslice:VERSION)")
    p.add_argument("--timeout", type=float, default=90.0, metavar="SECONDS")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("probe-agent", help="(inside verify's probe pods)")
    p.add_argument("--configmap", required=True)
    p.add_argument("--member", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=run_probe_agent)

    p = sub.add_parser("dashboard", help="serve the web dashboard of a hub",
                       description="Serves the read-only dashboard (docs/dashboard.md) for the "
                       "hub context on http://LISTEN:PORT/. Access needs a bearer token: "
                       "--token, $WGSLICE_DASHBOARD_TOKEN, --token-file, or a random one "
                       "printed in the URL.")
    _common(p, output=False)
    p.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--token", help="bearer token (prefer $WGSLICE_DASHBOARD_TOKEN)")
    p.add_argument("--token-file", help="file holding the bearer token")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="serve without any token (a lab on loopback only)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between hub reads")
    p.add_argument("--in-cluster", action="store_true",
                   help="use the pod's service account (the hub chart's Deployment)")
    p.set_defaults(func=run_dashboard)


# -- helpers ------------------------------------------------------------------------------------
def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _client(args: argparse.Namespace) -> Kube:
    from wgslice.slice.inspect.hub import api_client

    return api_client(args.kubeconfig, args.context)


def _read(args: argparse.Namespace) -> tuple[Kube, Snapshot]:
    from wgslice.slice.inspect.hub import read_snapshot

    client = _client(args)
    try:
        return client, read_snapshot(client)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot read the hub ({args.context or 'current context'}): "
                        f"{type(exc).__name__}: {str(exc)[:300]}; check --context and that "
                        "the wgslice CRDs are installed (`wgslice install`)") from None


def _state(snap: Snapshot) -> State:
    import time

    from wgslice.slice.dashboard.source import State

    state = State(snapshot=snap, mono=time.monotonic(), version=1, read_at=time.time())
    state.rates.observe_snapshot(snap, state.mono)
    return state


def _document(state: State, view: str) -> dict[str, Any]:
    """The JSON document of a dashboard view that is an object (every view used here)."""
    from wgslice.slice.dashboard.server import render

    doc = render(state, view)
    if not isinstance(doc, dict):
        raise TypeError(f"view {view!r} is {type(doc).__name__}, not a JSON object")
    return doc


def _emit(doc: Any, args: argparse.Namespace, text: str) -> None:
    from wgslice.slice.inspect.render import dump

    print(text if args.output == "table" else dump(doc, args.output))


# -- commands -----------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    from wgslice.slice.inspect.render import status_text

    _, snap = _read(args)
    doc = _document(_state(snap), "overview")
    doc.pop("source", None)
    _emit(doc, args, status_text(doc, _colour()))
    return 0


def run_tunnels(args: argparse.Namespace) -> int:
    import time

    from wgslice.slice.inspect.hub import read_snapshot
    from wgslice.slice.inspect.render import tunnels_text

    client, snap = _read(args)
    state = _state(snap)
    names = sorted(s["metadata"]["name"] for s in snap.slices)
    if args.slice and args.slice not in names:
        raise UserError(f"no slice {args.slice!r} in the hub; slices: "
                        f"{', '.join(names) or 'none'}")
    if args.sample > 0:
        time.sleep(args.sample)
        snap2 = read_snapshot(client, events=False)
        state.mono = time.monotonic()
        state.rates.observe_snapshot(snap2, state.mono)
        state.snapshot = snap2
    doc = _document(state, f"tunnels/{args.slice}" if args.slice else "tunnels")
    doc.pop("source", None)
    _emit(doc, args, tunnels_text(doc["items"], _colour()))
    return 0


def run_graph(args: argparse.Namespace) -> int:
    from wgslice.slice.inspect.render import graph_text

    _, snap = _read(args)
    state = _state(snap)
    names = sorted(s["metadata"]["name"] for s in snap.slices)
    if args.slice:
        if args.slice not in names:
            raise UserError(f"no slice {args.slice!r}; slices: {', '.join(names) or 'none'}")
        names = [args.slice]
    graphs = []
    for n in names:
        d = _document(state, f"slice/{n}")
        graphs.append({"name": n, "cidr": d["cidr"], "topology": d["topology"],
                       "nodes": d["graph"]["nodes"], "edges": d["graph"]["edges"]})
    doc = {"slices": graphs}
    _emit(doc, args, graph_text(graphs, args.format, _colour()))
    return 0


def _member_contexts(args: argparse.Namespace) -> dict[str, str]:
    from wgslice.slice.inspect.hub import contexts

    names, _ = contexts(args.kubeconfig)
    out = {n: n for n in names}
    for item in args.member_context:
        member, sep, ctx = item.partition("=")
        if not sep or not member or not ctx:
            raise UserError(f"--member-context {item!r}: expected MEMBER=CONTEXT")
        if names and ctx not in names:
            raise UserError(f"--member-context {item!r}: no context {ctx!r} in the kubeconfig "
                            f"(contexts: {', '.join(names)})")
        out[member] = ctx
    return out


def run_diagnose(args: argparse.Namespace) -> int:
    from wgslice.slice.inspect.diagnose import diagnose
    from wgslice.slice.inspect.render import checks_text

    if getattr(args, "name", None):
        from wgslice.slice.inspect.checks import name_checks
        from wgslice.slice.inspect.hub import api_client, read_snapshot

        snap = read_snapshot(api_client(args.kubeconfig, args.context), events=False)
        checks = name_checks(snap, args.name, args.member)
    else:
        checks = diagnose(args.kubeconfig, args.context, _member_contexts(args), args.slice)
    doc = {"checks": checks, "failed": sum(c["status"] == "fail" for c in checks),
           "warnings": sum(c["status"] == "warn" for c in checks)}
    _emit(doc, args, checks_text(checks, _colour()))
    return 1 if doc["failed"] else 0


def run_verify(args: argparse.Namespace) -> int:
    from wgslice import __version__
    from wgslice.slice.inspect.render import matrix_text
    from wgslice.slice.inspect.verify import verify

    doc = verify(args.kubeconfig, args.context, _member_contexts(args), args.slice,
                 namespace=args.namespace, image=args.image or f"wgslice/wgslice:{__version__}",
                 timeout=args.timeout, say=lambda m: print(f"==> {m}", file=sys.stderr))
    _emit(doc, args, matrix_text(doc, _colour()))
    return 0 if doc["reachable"] == doc["pairs"] else 1


def run_probe_agent(args: argparse.Namespace) -> int:
    from wgslice.slice.inspect.probeagent import main

    return main(args.configmap, args.member, args.timeout)


def run_dashboard(args: argparse.Namespace) -> int:
    from wgslice.slice.dashboard.run import run

    return run(args)
