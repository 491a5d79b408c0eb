"""Issue 5's mission, end to end on the lab: hub + c1, c2, c3 (2 nodes each; node 1 is the
gateway node), wgslice installed from its charts, the slice `demo` (namespaces shop and
billing, a DaemonSet `web` in each, so a workload pod on every gateway and non-gateway node).

The tests share one module lab (prefix ``wgsmis-``, ports 21443-21446, a temp state dir;
WGSLICE_MISSION_PREFIX / WGSLICE_MISSION_PORT_BASE override them; the fixture's finalizer
stops every echo server and runs `down`, also on failure). They tell the mission's story in
file order, but none relies on an earlier one: the fixtures `no_demo`, `demo_two`,
`demo_all` and `other_slice` bring the slices to the state a step starts from (in file order
they find it there and change nothing), and 07 and 08 restore the slice they change for
their checks:

  01 demo Ready with c1, c2          06 second slice `other` isolated from `demo`
  02 c3 added, c1/c2 subnets kept     07 namespace attached live (same pod) and detached
  03 all pairs ICMP/TCP/UDP, source   08 member c3 removed and added back
  04 source address in a capture      09 hub controller, member agent, gateway restarts
  05 non-slice pods refused           10 slice deletion leaves nothing behind

Traffic: only between the lab's pod namespaces (10.224.0.0/12 slice addresses).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from mis_lab import (
    ADDRESS,
    G,
    Mission,
    PingLoop,
    SlicePod,
    V,
    all_pairs,
    cross_pairs,
    node_leftovers,
    wait_for,
)

from wgslice.lab import Lab, demo

# two runs of this module at once (CI and a developer) must differ in both: `down` sweeps
# the prefix's namespaces, and the lab's API ports are fixed per port base
PREFIX = os.environ.get("WGSLICE_MISSION_PREFIX", "wgsmis-")
PORT_BASE = int(os.environ.get("WGSLICE_MISSION_PORT_BASE", "21443"))
MEMBERS = ["c1", "c2", "c3"]
NAMESPACES = list(demo.DEMO_NAMESPACES)  # shop, billing
SYSTEM = "wgslice-system"
SLICE_LABEL = "wgslice.io/slice"

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None
                       or shutil.which("wireguard-go") is None,
                       reason="needs root, iproute2 and wireguard-go"),
]


def _workloads(namespaces: list[str]) -> list[dict[str, Any]]:
    _slice, objs = demo.demo_objects(MEMBERS)
    out = []
    for ns in namespaces:
        for o in objs:
            if o["kind"] == "Namespace":
                out.append({**o, "metadata": {"name": ns}})
            else:
                out.append({**o, "metadata": {"name": "web", "namespace": ns}})
    return out


def _slice(name: str, members: list[str], namespaces: list[str]) -> dict[str, Any]:
    return {"apiVersion": f"{G}/{V}", "kind": "Slice", "metadata": {"name": name},
            "spec": {"members": members, "namespaces": [{"name": n} for n in namespaces]}}


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mission]:
    lab = Lab(state_dir=tmp_path_factory.mktemp("mission") / "state", prefix=PREFIX,
              port_base=PORT_BASE)
    lab.down()  # leftovers of an interrupted earlier run with the same prefix
    mission = Mission(lab)
    try:
        t0 = time.monotonic()
        plan = lab.up(members=3, nodes=2, timeout=60)
        demo.install(lab.dirs, plan, lambda _msg: None)
        for c in MEMBERS:
            mission.apply(c, _workloads(NAMESPACES))
        for c in MEMBERS:
            lab.wait_ready(c, "app=web", namespace="shop", count=2, timeout=60)
            lab.wait_ready(c, "app=web", namespace="billing", count=2, timeout=60)
        mission.timings["lab up + install + workloads"] = time.monotonic() - t0
        yield mission
    finally:
        mission.close()
        lab.down()
        print("\nmission timings (s): " + json.dumps(
            {k: round(v, 1) for k, v in mission.timings.items()}), file=sys.stderr)


def _demo_pods(m: Mission, members: list[str] = MEMBERS) -> list[SlicePod]:
    return m.slice_pods(members, NAMESPACES)


def _wait_attached(m: Mission, members: list[str], namespaces: list[str], per_member: int,
                   timeout: float = 60.0) -> list[SlicePod]:
    """Every member has ``per_member`` pods with an address and a slice0 interface."""
    def check() -> list[SlicePod] | None:
        pods = m.slice_pods(members, namespaces)
        counts = {c: sum(p.cluster == c for p in pods) for c in members}
        if any(n < per_member for n in counts.values()):
            return None
        return pods if all(m.has_slice0(p) for p in pods) else None

    return wait_for(check, timeout, f"{per_member} pods with slice0 in each of {members} "
                    f"({namespaces})")


def _slice_gone(m: Mission, name: str) -> bool:
    return not [s for s in m.get("hub", f"/apis/{G}/{V}/slices")["items"]
                if s["metadata"]["name"] == name]


def _ensure_slice(m: Mission, name: str, members: list[str], namespaces: list[str],
                  per_member: int) -> None:
    """Slice `name` over `members` and `namespaces`, Ready, with `per_member` attached pods
    in each member: applied (unchanged when it is so already) and waited for."""
    m.apply("hub", [_slice(name, members, namespaces)])
    m.wait_ready(name, members, timeout=90)
    _wait_attached(m, members, namespaces, per_member=per_member, timeout=90)


@pytest.fixture
def no_demo(m: Mission) -> None:
    """No slice `demo`: deleted, and gone from the hub, when an earlier test left one."""
    if not _slice_gone(m, "demo"):
        m.kubectl("delete", "slice", "demo", "--wait=false")
        wait_for(lambda: _slice_gone(m, "demo"), 90, "slice demo gone from the hub")


@pytest.fixture
def demo_two(m: Mission) -> None:
    """The demo slice over c1 and c2 (step 01's result)."""
    _ensure_slice(m, "demo", ["c1", "c2"], NAMESPACES, per_member=4)


@pytest.fixture
def demo_all(m: Mission) -> None:
    """The demo slice over all three members, every web pod attached (step 02's result)."""
    _ensure_slice(m, "demo", MEMBERS, NAMESPACES, per_member=4)


@pytest.fixture
def other_slice(m: Mission, demo_all: None) -> None:
    """The demo slice and the second slice `other` (namespace blue), as step 06 leaves them."""
    for c in MEMBERS:
        m.apply(c, _workloads(["blue"]))
    _ensure_slice(m, "other", MEMBERS, ["blue"], per_member=2)


# -- 01-02: a slice comes up, a member joins it -------------------------------------------
@pytest.mark.usefixtures("no_demo")
def test_01_demo_ready_with_two_members(m: Mission) -> None:
    """The demo slice over c1 and c2: Ready, one subnet each, every web pod gets slice0."""
    t0 = time.monotonic()
    m.apply("hub", [_slice("demo", ["c1", "c2"], NAMESPACES)])
    m.wait_ready("demo", ["c1", "c2"], timeout=60)
    m.timings["demo Ready (2 members)"] = time.monotonic() - t0
    pods = _wait_attached(m, ["c1", "c2"], NAMESPACES, per_member=4)
    m.timings["demo attached (2 members)"] = time.monotonic() - t0
    st = m.slice_status("demo")
    assert st["cidr"] and len(set(m.subnets("demo").values())) == 2
    assert len({p.address for p in pods}) == len(pods) == 8
    m.wait_pairs(cross_pairs(pods), 30, "c1 <-> c2", only="icmp")


@pytest.mark.usefixtures("demo_two")
def test_02_member_added_keeps_allocations(m: Mission) -> None:
    """c3 added to the live slice: c1's and c2's subnets and pod addresses stay as they were."""
    before = m.subnets("demo")
    cidr = m.slice_status("demo")["cidr"]
    addrs = {p.uid: p.address for p in _demo_pods(m, ["c1", "c2"])}
    t0 = time.monotonic()
    m.patch_slice("demo", {"members": MEMBERS})
    m.wait_ready("demo", MEMBERS, timeout=60)
    _wait_attached(m, MEMBERS, NAMESPACES, per_member=4)
    m.timings["c3 added -> Ready + attached"] = time.monotonic() - t0
    after = m.subnets("demo")
    assert {k: after[k] for k in before} == before
    assert m.slice_status("demo")["cidr"] == cidr
    assert {p.uid: p.address for p in _demo_pods(m, ["c1", "c2"])} == addrs
    assert len(set(after.values())) == 3


# -- 03-05: the data path ------------------------------------------------------------------
@pytest.mark.usefixtures("demo_all")
def test_03_all_pairs_icmp_tcp_udp_source_preserved(m: Mission) -> None:
    """Every pod (gateway and worker nodes, both namespaces) reaches every pod of the other
    members by ICMP, TCP and UDP; the TCP/UDP receiver reports the sender's slice address."""
    pods = _demo_pods(m)
    assert len(pods) == 12
    assert {p.node for p in pods} == {f"{c}-node-{i}" for c in MEMBERS for i in (1, 2)}
    took = m.wait_pairs(cross_pairs(pods), 30, "all pairs across members")
    m.timings["all pairs (96 x icmp/tcp/udp)"] = took


@pytest.mark.usefixtures("demo_all")
def test_04_receiver_capture_shows_sender_slice_address(m: Mission) -> None:
    """A scapy capture on the receiver's slice0: every packet for it carries the sender's
    slice address as source (gateway -> worker, worker -> worker, worker -> gateway)."""
    pods = {(p.cluster, p.namespace, p.node.rsplit("-", 1)[1]): p for p in _demo_pods(m)}
    cases = [(pods["c1", "shop", "1"], pods["c2", "billing", "2"]),
             (pods["c3", "billing", "2"], pods["c1", "shop", "2"]),
             (pods["c2", "shop", "2"], pods["c3", "shop", "1"])]
    m.serve([dst for _, dst in cases])
    captures = [(src, dst, *m.sniff(dst, 40, 6.0, f"dst host {dst.address} and "
                                    f"(icmp or tcp or udp)")) for src, dst in cases]
    for src, dst, *_ in captures:
        got = m.probe(src, [dst.address])[dst.address]
        assert got == {"icmp": True, "tcp": src.address, "udp": src.address}, (src.ref, got)
    for src, dst, proc, _ev, lines in captures:
        proc.wait(timeout=20)
        packets = json.loads(lines[-1])
        protos = {proto for proto, _s, _d in packets}
        assert {"icmp", "tcp", "udp"} <= protos, (src.ref, dst.ref, packets)
        sources = {s for _p, s, _d in packets}
        assert sources == {src.address}, f"{src.ref} -> {dst.ref}: sources seen {sources}"


@pytest.mark.usefixtures("demo_all")
def test_05_pods_outside_the_slice_are_refused(m: Mission) -> None:
    """A pod in `default` (not attached) reaches no slice address, local or remote."""
    for c, node in (("c1", "c1-node-2"), ("c2", "c2-node-1")):
        m.apply(c, [{"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "outsider", "namespace": "default"},
                     "spec": {"nodeName": node,
                              "containers": [{"name": "idle", "image": "busybox:1.36"}]}}])
    outsiders = wait_for(lambda: len(o := m.slice_pods(["c1", "c2"], ["default"],
                                                        attached=False)) == 2 and o,
                         30, "the outsider pods Running")
    assert not any(m.has_slice0(o) for o in outsiders)
    targets = _demo_pods(m)
    bad = m.pair_failures({o: targets for o in outsiders}, expect=False, timeout=1.0)
    assert bad == [], "non-slice pods reached slice addresses:\n" + "\n".join(bad)


# -- 06: a second slice ---------------------------------------------------------------------
@pytest.mark.usefixtures("demo_all")
def test_06_second_slice_isolated(m: Mission) -> None:
    """Slice `other` (namespace `blue`) over the same members works on its own and neither
    slice reaches the other, even when a pod routes the other CIDR into its slice0."""
    for c in MEMBERS:
        m.apply(c, _workloads(["blue"]))
    t0 = time.monotonic()
    m.apply("hub", [_slice("other", MEMBERS, ["blue"])])
    m.wait_ready("other", MEMBERS, timeout=60)
    blue = _wait_attached(m, MEMBERS, ["blue"], per_member=2)
    m.timings["second slice Ready + attached"] = time.monotonic() - t0
    demo_cidr, other_cidr = m.slice_status("demo")["cidr"], m.slice_status("other")["cidr"]
    assert demo_cidr != other_cidr
    m.wait_pairs(cross_pairs(blue), 30, "slice other, all pairs")
    red = _demo_pods(m)
    bad = m.pair_failures(all_pairs(blue, red), expect=False, timeout=1.0)
    bad += m.pair_failures(all_pairs(red[::3], blue), expect=False, timeout=1.0)
    assert bad == [], "slices not isolated:\n" + "\n".join(bad)
    # a pod of `other` sends demo's CIDR into its slice0: its node's slice table refuses it
    rogue = next(p for p in blue if p.cluster == "c1" and p.node.endswith("-2"))
    route = m.run_in(rogue, ["ip", "route", "show", "dev", "slice0"]).stdout.split()
    via = route[route.index("via") + 1]
    add = m.run_in(rogue, ["ip", "route", "add", demo_cidr, "via", via, "dev", "slice0",
                           "onlink"])
    assert add.returncode == 0, add.stderr
    try:
        bad = m.pair_failures({rogue: red}, expect=False, timeout=1.0)
        assert bad == [], "slice other reached demo through slice0:\n" + "\n".join(bad)
    finally:
        m.run_in(rogue, ["ip", "route", "del", demo_cidr])


# -- 07: live attach and detach -------------------------------------------------------------
@pytest.mark.usefixtures("demo_all")
def test_07_namespace_attached_live_then_detached(m: Mission) -> None:
    """A running pod in namespace `live` joins when `live` is added to the slice (same uid,
    no restart) and reaches remote pods; removed again, slice0 goes and the pod runs on."""
    m.apply("c1", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "live"}},
                   {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "runner", "namespace": "live"},
                    "spec": {"nodeName": "c1-node-2",
                             "containers": [{"name": "idle", "image": "busybox:1.36"}]}}])
    pod = wait_for(lambda: m.slice_pods(["c1"], ["live"], attached=False), 30,
                   "live/runner Running")[0]
    assert not m.has_slice0(pod)

    def restarts() -> int:
        p = m.pods("c1", "live")[0]
        return sum(cs.get("restartCount", 0) for cs in p["status"]["containerStatuses"])

    remote = [p for p in _demo_pods(m) if p.cluster in ("c2", "c3")]
    t0 = time.monotonic()
    m.patch_slice("demo", {"namespaces": [{"name": n} for n in [*NAMESPACES, "live"]]})
    joined = wait_for(lambda: [p for p in m.slice_pods(["c1"], ["live"]) if m.has_slice0(p)],
                      45, "live/runner attached (address + slice0)")[0]
    assert (joined.uid, joined.netns) == (pod.uid, pod.netns) and restarts() == 0
    m.wait_pairs({joined: remote}, 30, "live pod -> remote pods")
    m.wait_pairs({r: [joined] for r in remote[:2]}, 10, "remote pods -> live pod")
    m.timings["live attach -> reachable"] = time.monotonic() - t0

    t0 = time.monotonic()
    m.patch_slice("demo", {"namespaces": [{"name": n} for n in NAMESPACES]})
    wait_for(lambda: not m.has_slice0(joined), 45, "slice0 gone from live/runner")
    m.timings["live detach -> slice0 gone"] = time.monotonic() - t0
    after = m.pods("c1", "live")[0]
    assert after["metadata"]["uid"] == pod.uid and after["status"]["phase"] == "Running"
    assert restarts() == 0
    ip = m.run_in(pod, ["ip", "-br", "addr", "show", "eth0"])
    assert ip.returncode == 0 and "UP" in ip.stdout, ip
    bad = m.pair_failures({r: [joined] for r in remote[:2]}, expect=False, timeout=1.0)
    assert bad == [], "detached address still reachable:\n" + "\n".join(bad)
    m.wait_ready("demo", MEMBERS, timeout=30)
    # nothing of the slice stays on the namespace: a leftover `wgslice.io/slice` label would
    # let it through demo's isolation NetworkPolicies, a leftover policy would isolate it
    left = _marks_left(m, [("c1", "live")])
    assert left == [], "left on the detached namespace:\n" + "\n".join(left)


def _slice_marks(m: Mission, cluster: str, namespace: str) -> list[str]:
    """The slice label on a namespace and wgslice NetworkPolicies in it."""
    marks = []
    labels = m.get(cluster, f"/api/v1/namespaces/{namespace}")["metadata"].get("labels") or {}
    if SLICE_LABEL in labels:
        marks.append(f"{cluster} namespace {namespace} label {SLICE_LABEL}="
                     f"{labels[SLICE_LABEL]}")
    marks += [f"{cluster} networkpolicy {namespace}/{x['metadata']['name']}" for x in m.get(
        cluster, f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")["items"]]
    return marks


def _marks_left(m: Mission, where: list[tuple[str, str]], timeout: float = 20.0
                ) -> list[str]:
    """Waits (bounded) until no slice label or policy is left there; returns what is left."""
    def marks() -> list[str]:
        return [x for c, ns in where for x in _slice_marks(m, c, ns)]

    try:
        wait_for(lambda: not marks(), timeout, "no slice label or policy left", interval=1.0)
    except TimeoutError:
        return [f"after {timeout:.0f} s: {x}" for x in marks()]
    return []


# -- 08: a member leaves and comes back ---------------------------------------------------
@pytest.mark.usefixtures("demo_all")
def test_08_member_removed_and_added_back(m: Mission) -> None:
    """c3 leaves: its MemberSlice and slice0 interfaces go, c1 <-> c2 keeps working with the
    same subnets; c3 comes back and every pair works again."""
    before = m.subnets("demo")
    t0 = time.monotonic()
    m.patch_slice("demo", {"members": ["c1", "c2"]})
    m.wait_ready("demo", ["c1", "c2"], timeout=60)
    c3 = m.slice_pods(["c3"], NAMESPACES, attached=False)
    wait_for(lambda: not any(m.has_slice0(p) for p in c3), 45, "slice0 gone from c3 pods")
    wait_for(lambda: not [x for x in m.get("hub", f"/apis/{G}/{V}/namespaces/"
                                            "wgslice-member-c3/memberslices")["items"]
                          if x["metadata"]["name"] == "demo"], 45, "c3's MemberSlice gone")
    m.timings["c3 removed -> torn down"] = time.monotonic() - t0
    assert {k: v for k, v in m.subnets("demo").items()} == {k: before[k] for k in ("c1", "c2")}
    m.wait_pairs(cross_pairs(_demo_pods(m, ["c1", "c2"])), 20, "c1 <-> c2 without c3",
                 only="icmp")
    bad = m.pair_failures({p: _demo_pods(m, ["c1", "c2"]) for p in c3[:2]}, expect=False,
                          timeout=1.0)
    assert bad == [], "c3 still reaches the slice after leaving it:\n" + "\n".join(bad)
    left = _marks_left(m, [("c3", ns) for ns in NAMESPACES])  # asserted at the end
    t0 = time.monotonic()
    m.patch_slice("demo", {"members": MEMBERS})
    m.wait_ready("demo", MEMBERS, timeout=60)
    pods = _wait_attached(m, MEMBERS, NAMESPACES, per_member=4)
    m.wait_pairs(cross_pairs(pods), 30, "all pairs after c3 came back")
    m.timings["c3 re-added -> all pairs"] = time.monotonic() - t0
    after = m.subnets("demo")
    assert {k: after[k] for k in ("c1", "c2")} == {k: before[k] for k in ("c1", "c2")}
    assert left == [], "left on c3's namespaces after c3 left the slice:\n" + "\n".join(left)


# -- 09: restarts ----------------------------------------------------------------------------
def _allocation(m: Mission) -> dict[str, Any]:
    keys = {}
    for c in MEMBERS:
        ms = m.get("hub", f"/apis/{G}/{V}/namespaces/wgslice-member-{c}/memberslices/demo")
        keys[c] = (ms.get("status") or {}).get("publicKey")
    return {"cidr": m.slice_status("demo")["cidr"], "subnets": m.subnets("demo"),
            "pods": {p.uid: p.address for p in _demo_pods(m)}, "keys": keys}


def _restart(m: Mission, context: str, selector: str) -> float:
    """Deletes the matching pods in wgslice-system and waits for new Ready ones."""
    old = {p["metadata"]["name"] for p in m.pods(context, SYSTEM, selector)}
    assert old, f"no pod {selector} in {context}"
    t0 = time.monotonic()
    m.kubectl("delete", "pod", "-n", SYSTEM, "-l", selector, "--wait=false", context=context)

    def fresh() -> bool:
        pods = m.pods(context, SYSTEM, selector)
        return len(pods) == len(old) and all(
            p["metadata"]["name"] not in old and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []) for p in pods)

    wait_for(fresh, 60, f"{context}: new Ready pods for {selector}")
    return time.monotonic() - t0


@pytest.mark.usefixtures("demo_all")
def test_09_restarts_keep_allocations_and_traffic_recovers(m: Mission) -> None:
    """Hub controllers, c1's member agent, c2's gateway: each deleted and recreated; CIDR,
    subnets, pod addresses and gateway public keys unchanged; all pairs work again."""
    alloc = _allocation(m)
    assert all(alloc["keys"].values()), alloc["keys"]
    pods = _demo_pods(m)
    pairs = cross_pairs(pods)
    # a worker pod of c1 pings a worker pod of c2 every 0.2 s through each restart
    src = next(p for p in pods if p.cluster == "c1" and p.node.endswith("-2"))
    dst = next(p for p in pods if p.cluster == "c2" and p.node.endswith("-2"))
    for what, context, selector, max_gap in (
        ("hub controller", "hub", "app.kubernetes.io/component=controller", 5.0),
        ("member agent c1", "c1", "app.kubernetes.io/component=member-agent", 5.0),
        ("gateway c2", "c2", "app.kubernetes.io/name=wgslice-gateway,wgslice.io/slice=demo",
         None),
    ):
        loop = PingLoop(src, dst.address, seconds=12.0)
        try:
            t0 = time.monotonic()
            m.timings[f"{what}: pods back"] = _restart(m, context, selector)
            m.wait_pairs(pairs, 60, f"all pairs after restarting the {what}", only="icmp,udp")
            m.timings[f"{what}: traffic recovered"] = time.monotonic() - t0
            gap = m.timings[f"{what}: longest ping gap"] = loop.longest_gap()
        finally:
            loop.kill()
        # the data plane keeps its configuration while the control plane restarts
        assert max_gap is None or gap < max_gap, f"{what}: traffic stopped for {gap:.1f} s"
        wait_for(lambda: m.ready("demo", MEMBERS), 60, f"demo Ready after {what} restart")
        assert _allocation(m) == alloc, what
    m.wait_pairs(pairs, 30, "all pairs after every restart")


# -- 10: deletion ----------------------------------------------------------------------------
@pytest.mark.usefixtures("other_slice")
def test_10_deleting_slices_leaves_nothing(m: Mission) -> None:
    """Both slices deleted: no MemberSlice, gateway Deployment/ConfigMap/Secret, slice
    ConfigMap, NetworkPolicy, slice0, address annotation, interface, route or rule remains."""
    tables = set()
    for c in MEMBERS:
        for s in ("demo", "other"):
            cm = m.get(c, f"/api/v1/namespaces/{SYSTEM}/configmaps/wgslice-slice-{s}")
            tables.add(int(yaml.safe_load(cm["data"]["slice.yaml"])["table"]))
    cidrs = [m.slice_status(s)["cidr"] for s in ("demo", "other")]
    pods = m.slice_pods(MEMBERS, [*NAMESPACES, "blue"])
    t0 = time.monotonic()
    m.kubectl("delete", "slice", "demo", "other", "--wait=false")

    def hub_left() -> list[str]:
        left = [s["metadata"]["name"] for s in
                m.get("hub", f"/apis/{G}/{V}/slices")["items"]]
        for c in MEMBERS:
            left += [f"MemberSlice {c}/{x['metadata']['name']}" for x in m.get(
                "hub", f"/apis/{G}/{V}/namespaces/wgslice-member-{c}/memberslices")["items"]]
        return left

    wait_for(lambda: not hub_left(), 60, "Slices and MemberSlices gone from the hub "
             f"({hub_left()})")
    m.timings["slices deleted -> hub clean"] = time.monotonic() - t0

    def member_left() -> list[str]:
        left = []
        for c in MEMBERS:
            for kind in ("deployments", "configmaps", "secrets"):
                api = "/apis/apps/v1" if kind == "deployments" else "/api/v1"
                left += [f"{c} {kind} {x['metadata']['name']}" for x in m.get(
                    c, f"{api}/namespaces/{SYSTEM}/{kind}")["items"]
                    if x["metadata"]["name"].startswith(("wgslice-gw-", "wgslice-slice-"))]
            for p in m.pods(c, SYSTEM, "app.kubernetes.io/name=wgslice-gateway"):
                left.append(f"{c} gateway pod {p['metadata']['name']}")
            for ns in [*NAMESPACES, "blue"]:
                left += [f"{c} annotation {ns}/{p['metadata']['name']}" for p in m.pods(c, ns)
                         if ADDRESS in (p["metadata"].get("annotations") or {})]
        for c in MEMBERS:
            for ns in [*NAMESPACES, "blue"]:
                left += _slice_marks(m, c, ns)
        left += [f"slice0 in {p.ref}" for p in pods if m.has_slice0(p)]
        left += node_leftovers(m.lab, MEMBERS, sorted(tables), cidrs)
        return left

    try:
        wait_for(lambda: not member_left(), 60, "members clean")
    except TimeoutError:
        pytest.fail("left behind after deleting the slices:\n" + "\n".join(member_left()))
    m.timings["slices deleted -> members clean"] = time.monotonic() - t0
    for p in pods:  # the workloads themselves live on, untouched
        assert m.run_in(p, ["ip", "link", "show", "eth0"]).returncode == 0, p.ref
