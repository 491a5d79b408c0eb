"""A storm of Slice creations and deletions against a real hub, with the hub controller as a
real process that may be SIGKILLed in the middle (issue 14, item 3, first fault).

Shared by tests/faults/test_hub_storm.py and bench/bench_storm.py (a unique module name, as
the tests' other helper modules). Pieces:

- `setup_hub`: the CRDs, the shipped default OverlayPool, the three MemberClusters of
  examples/members.yaml and the Lease namespace, on a `ControlPlane`;
- `Controller`: `python -m wgslice controller` as a process of its own (its own session, so
  `kill()` takes everything it started), with the chart's defaults (resync 10 s) and a fixed
  identity, as a container restarted in the same pod keeps its POD_NAME;
- `FakeAgents`: what the three member agents do to the hub, in a thread: hold the member
  finalizer on each MemberSlice, publish a key and every tunnel as connected (so a Slice
  can become Ready), and release the finalizer of a deleting MemberSlice (teardown done);
- `Storm`: creates N Slices and deletes every third one shortly after, in a burst from a
  thread, with a callback after creation number K (where the test kills the controller);
- `Watcher`: lists the hub every few tenths of a second during the whole run and records
  every overlap (slice CIDRs, including those of deleting slices, which stay reserved;
  member subnets within and across slices) and every allocation that moved;
- `convergence_problems`: what still differs from the converged state (empty when done).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from waiting import install_crds, wait_for

from wgslice.lab.standalone import ControlPlane
from wgslice.slice.defaults import CRD_DIR
from wgslice.slice.status import MEMBER_FINALIZER, SLICE_FINALIZER, SLICE_LABEL

G, V = "wgslice.io", "v1alpha1"
ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("east", "west", "north")  # examples/members.yaml
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- the hub ---------------------------------------------------------------------------------
def api_client(kubeconfig: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(config_file=str(kubeconfig))




def setup_hub(cp: ControlPlane, workdir: Path) -> Path:
    """CRDs, default pool, three MemberClusters, the Lease namespace; returns a kubeconfig."""
    kubeconfig = cp.write_kubeconfig(workdir / "kubeconfig")
    with api_client(kubeconfig) as c:
        install_crds(c)
        co = k8s.CustomObjectsApi(c)
        for plural in ("slices", "memberslices", "overlaypools", "memberclusters"):
            wait_for(f"{plural} served",
                     lambda p=plural: co.list_cluster_custom_object(G, V, p) is not None)
        for doc in yaml.safe_load_all((CRD_DIR / "default-pool.yaml").read_text()):
            co.create_cluster_custom_object(G, V, "overlaypools", doc)
        for doc in yaml.safe_load_all((ROOT / "examples" / "members.yaml").read_text()):
            co.create_cluster_custom_object(G, V, "memberclusters", doc)
        k8s.CoreV1Api(c).create_namespace({"metadata": {"name": "wgslice-system"}})
    return kubeconfig


def slice_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{G}/{V}", "kind": "Slice", "metadata": {"name": name},
            "spec": {"members": list(MEMBERS), "namespaces": [{"name": name}]}}


# -- the controller process ------------------------------------------------------------------
class Controller:
    """`python -m wgslice controller` in its own session; `kill()` is SIGKILL to the group."""

    def __init__(self, kubeconfig: Path, log: Path, identity: str = "hub-storm-0",
                 resync: float = 10.0) -> None:
        self.kubeconfig, self.log, self.identity, self.resync = kubeconfig, log, identity, resync
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Controller:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} at {time.time():.3f} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wgslice", "controller", "--id", self.identity,
                 "--resync", str(self.resync)],
                env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL, no chance to clean up (as the OOM killer or a node failure would)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; safe to call at any time (fixtures' finally)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def rounds(self) -> dict[str, int]:
        """What the log shows, per start: rounds that wrote, their writes, failed writes and
        failed rounds (slice/controller.py logs a round only when it had actions)."""
        out: dict[str, int] = {}
        for n, part in enumerate(self.log_text().split("===== start ")[1:], 1):
            wrote = re.findall(
                r"reconciled: (\d+) MemberSlice writes, (\d+) deletes, (\d+) statuses, "
                r"(\d+) failed", part)
            out[f"start{n}_rounds"] = len(wrote)
            out[f"start{n}_writes"] = sum(int(a) + int(b) + int(c) for a, b, c, _ in wrote)
            out[f"start{n}_failed_writes"] = sum(int(w[3]) for w in wrote)
            out[f"start{n}_failed_rounds"] = part.count("reconcile round failed")
        return out


def wait_active(co: k8s.CustomObjectsApi, coord: k8s.CoordinationV1Api, identity: str,
                timeout: float = 60.0) -> None:
    """Until the controller holds the Lease and has written the default pool's status."""
    wait_for("the controller's lease", lambda: (coord.read_namespaced_lease(
        "wgslice-hub-controller", "wgslice-system").spec.holder_identity == identity), timeout)
    wait_for("the default pool's status", lambda: (co.get_cluster_custom_object(
        G, V, "overlaypools", "default").get("status") or {}).get("conditions"), timeout)


# -- what the member agents do to the hub ------------------------------------------------------
class FakeAgents(threading.Thread):
    """The three member agents' side of the hub contract (docs/member-contract.md), in one
    thread: finalizer on, key and tunnels published, finalizer off when deleting."""

    def __init__(self, kubeconfig: Path, interval: float = 0.2) -> None:
        super().__init__(name="fake-agents", daemon=True)
        self.kubeconfig, self.interval = kubeconfig, interval
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.released = 0

    def run(self) -> None:
        try:
            with api_client(self.kubeconfig) as c:
                co = k8s.CustomObjectsApi(c)
                while not self.halt.is_set():
                    for ms in co.list_cluster_custom_object(
                            G, V, "memberslices", label_selector=SLICE_LABEL)["items"]:
                        with contextlib.suppress(ApiException):  # 404/409: next pass
                            self._one(co, ms)
                    self.halt.wait(self.interval)
        except BaseException as exc:
            self.error = exc

    def _one(self, co: k8s.CustomObjectsApi, ms: dict[str, Any]) -> None:
        meta, spec = ms["metadata"], ms.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        held = MEMBER_FINALIZER in (meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if held:
                co.patch_namespaced_custom_object(G, V, ns, "memberslices", name, {"metadata": {
                    "finalizers": [f for f in meta["finalizers"] if f != MEMBER_FINALIZER],
                    "resourceVersion": meta["resourceVersion"]}})
                self.released += 1
            return
        if not held:
            co.patch_namespaced_custom_object(G, V, ns, "memberslices", name, {"metadata": {
                "finalizers": [*(meta.get("finalizers") or []), MEMBER_FINALIZER],
                "resourceVersion": meta["resourceVersion"]}})
        peers = sorted(p["member"] for p in spec.get("peers") or [])
        status = ms.get("status") or {}
        if status.get("publicKey") and sorted(
                t.get("peer", "") for t in status.get("tunnels") or []) == peers:
            return
        key = base64.b64encode(f"{spec['slice']}/{spec['member']}".encode()[:32]
                               .ljust(32, b"k")).decode()
        co.patch_namespaced_custom_object_status(G, V, ns, "memberslices", name, {"status": {
            "publicKey": key, "endpoint": "198.51.100.9:51820",
            "tunnels": [{"peer": p, "state": "connected"} for p in peers],
            "conditions": [{"type": "Ready", "status": "True", "reason": "GatewayUp",
                            "message": "", "lastTransitionTime": "2026-12-05T00:00:00Z"}]}})

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():  # safe in a finally before start()
            self.join(30)


# -- the storm ---------------------------------------------------------------------------------
class Storm(threading.Thread):
    """Creates `count` Slices named storm-NNN, `gap` seconds apart; after creating slice i
    with i % 3 == 2 it deletes slice i-2, so every third slice (0, 3, ..., 96 of 100) is
    deleted a few operations after its creation, while the controller works on it.
    `at_creation(k)` is called (in this thread) right after the k-th creation (1-based)."""

    def __init__(self, kubeconfig: Path, count: int = 100, gap: float = 0.03,
                 at_creation: Callable[[int], None] | None = None) -> None:
        super().__init__(name="storm", daemon=True)
        self.kubeconfig, self.count, self.gap, self.at_creation = (
            kubeconfig, count, gap, at_creation)
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.error: BaseException | None = None
        self.started_at = self.ended_at = 0.0

    @staticmethod
    def slice_name(i: int) -> str:
        return f"storm-{i:03d}"

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            with api_client(self.kubeconfig) as c:
                co = k8s.CustomObjectsApi(c)
                for i in range(self.count):
                    co.create_cluster_custom_object(G, V, "slices", slice_doc(self.slice_name(i)))
                    self.created.append(self.slice_name(i))
                    if self.at_creation is not None:
                        self.at_creation(i + 1)
                    time.sleep(self.gap)
                    if i % 3 == 2:
                        co.delete_cluster_custom_object(G, V, "slices", self.slice_name(i - 2))
                        self.deleted.append(self.slice_name(i - 2))
                        time.sleep(self.gap)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def kept(self) -> list[str]:
        gone = set(self.deleted)
        return [n for n in self.created if n not in gone]


# -- invariants ----------------------------------------------------------------------------------
def _net(text: Any) -> Net | None:
    try:
        return ipaddress.ip_network(str(text))
    except ValueError:
        return None


def _overlapping(owned: Iterable[tuple[str, Net]]) -> list[str]:
    """Every pair of overlapping networks among `owned`, by a sweep over sorted starts."""
    out = []
    by_start = sorted(owned, key=lambda o: (o[1].version, int(o[1].network_address),
                                            -o[1].prefixlen))
    open_: list[tuple[str, Net]] = []
    for owner, net in by_start:
        open_ = [(o, n) for o, n in open_
                 if n.version == net.version and
                 int(n.broadcast_address) >= int(net.network_address)]
        out += [f"{o} {n} overlaps {owner} {net}" for o, n in open_]
        open_.append((owner, net))
    return out


def allocation_problems(slices: Sequence[Mapping[str, Any]],
                        member_slices: Sequence[Mapping[str, Any]]) -> list[str]:
    """Overlaps in one consistent list of the hub: slice CIDRs (live and deleting alike: a
    deleting slice's CIDR stays reserved until it is gone), member subnets within a slice,
    subnets outside their slice, and MemberSlice subnets across slices."""
    problems = []
    cidrs = []
    for s in slices:
        name, st = s["metadata"]["name"], s.get("status") or {}
        cidr = _net(st.get("cidr")) if st.get("cidr") else None
        if st.get("cidr") and cidr is None:
            problems.append(f"Slice {name}: unparsable status.cidr {st.get('cidr')!r}")
        if cidr is not None:
            cidrs.append((f"Slice {name}", cidr))
        subnets = []
        for m in st.get("members") or []:
            sub = _net(m.get("subnet"))
            if sub is None:
                continue
            subnets.append((f"Slice {name} member {m.get('name')}", sub))
            if cidr is not None and not sub.subnet_of(cidr):  # type: ignore[arg-type]  # same IP version checked by the caller's pool
                problems.append(f"Slice {name}: member {m.get('name')} subnet {sub} "
                                f"outside {cidr}")
        problems += _overlapping(subnets)
    problems += _overlapping(cidrs)
    subs = []
    for ms in member_slices:
        spec = ms.get("spec") or {}
        sub, cidr = _net(spec.get("subnet")), _net(spec.get("cidr"))
        who = f"MemberSlice {ms['metadata']['namespace']}/{ms['metadata']['name']}"
        if sub is not None:
            subs.append((who, sub))
            if cidr is not None and not sub.subnet_of(cidr):  # type: ignore[arg-type]  # same IP version checked by the caller's pool
                problems.append(f"{who}: subnet {sub} outside {cidr}")
    problems += _overlapping(subs)
    return problems


def _cond(s: Mapping[str, Any], type_: str) -> str:
    c = next((c for c in (s.get("status") or {}).get("conditions") or []
              if c.get("type") == type_), {})
    return str(c.get("status", "missing"))


def convergence_problems(slices: Sequence[Mapping[str, Any]],
                         member_slices: Sequence[Mapping[str, Any]],
                         kept: Iterable[str], deleted: Iterable[str]) -> list[str]:
    """What differs from done: every kept slice Allocated and Ready for its generation with a
    MemberSlice per member matching its subnet; every deleted slice and MemberSlice gone."""
    by_name = {s["metadata"]["name"]: s for s in slices}
    ms_of: dict[str, dict[str, Mapping[str, Any]]] = {}
    for ms in member_slices:
        spec = ms.get("spec") or {}
        ms_of.setdefault(spec.get("slice", "?"), {})[spec.get("member", "?")] = ms
    out = []
    for name in kept:
        s = by_name.get(name)
        if s is None:
            out.append(f"{name}: missing")
            continue
        st, meta = s.get("status") or {}, s["metadata"]
        subnets = {m.get("name"): m.get("subnet") for m in st.get("members") or []}
        if meta.get("deletionTimestamp"):
            out.append(f"{name}: deleting")
        if st.get("observedGeneration") != meta.get("generation"):
            out.append(f"{name}: observedGeneration {st.get('observedGeneration')}")
        for t in ("Allocated", "Ready"):
            if _cond(s, t) != "True":
                out.append(f"{name}: {t} {_cond(s, t)}")
        if SLICE_FINALIZER not in (meta.get("finalizers") or []):
            out.append(f"{name}: no finalizer")
        if not st.get("cidr") or set(subnets) != set(MEMBERS) or not all(subnets.values()):
            out.append(f"{name}: allocation {st.get('cidr')} {subnets}")
        mss = ms_of.get(name, {})
        for m in MEMBERS:
            got = mss.get(m)
            if got is None or (got.get("spec") or {}).get("subnet") != subnets.get(m):
                out.append(f"{name}: MemberSlice for {m} "
                           f"{'missing' if got is None else got['spec'].get('subnet')}")
    for name in deleted:
        if name in by_name:
            fin = by_name[name]["metadata"].get("finalizers")
            out.append(f"{name}: deleted but still stored (finalizers {fin})")
        if ms_of.get(name):
            out.append(f"{name}: deleted but MemberSlices remain for {sorted(ms_of[name])}")
    return out


def describe(slices: Sequence[Mapping[str, Any]], member_slices: Sequence[Mapping[str, Any]],
             names: Iterable[str]) -> str:
    """The evidence for a violation: each named slice as stored, with its MemberSlices."""
    by_name = {s["metadata"]["name"]: s for s in slices}
    out = []
    for name in sorted(set(names)):
        s = by_name.get(name)
        if s is None:
            head = f"Slice {name}: not stored"
        else:
            meta, st = s["metadata"], s.get("status") or {}
            head = (f"Slice {name}: {'deleting' if meta.get('deletionTimestamp') else 'live'}, "
                    f"finalizers {meta.get('finalizers')}, status.cidr {st.get('cidr')}")
        mss = [
            f"{ms['metadata']['namespace']} subnet {(ms.get('spec') or {}).get('subnet')} "
            f"created {ms['metadata'].get('creationTimestamp')}"
            f"{' deleting' if ms['metadata'].get('deletionTimestamp') else ''} "
            f"finalizers {ms['metadata'].get('finalizers')}"
            for ms in member_slices if (ms.get("spec") or {}).get("slice") == name
        ]
        out.append(head + "; MemberSlices: " + ("; ".join(mss) or "none"))
    return " || ".join(out)


class Watcher(threading.Thread):
    """Lists the hub every `interval` s; records overlaps and moved allocations (a restarted
    controller must never move a CIDR or a subnet: neither Slice.status nor a MemberSlice's
    spec). `evidence[v]` says when violation `v` was first seen and what the hub held."""

    def __init__(self, kubeconfig: Path, interval: float = 0.3) -> None:
        super().__init__(name="watcher", daemon=True)
        self.kubeconfig, self.interval = kubeconfig, interval
        self.halt = threading.Event()
        self.samples = 0
        self.violations: list[str] = []
        self.evidence: dict[str, str] = {}
        self.t0 = time.monotonic()
        self.phase = "before the storm"
        self.first: dict[str, Any] = {}  # uid -> first allocation seen
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def list_once(self, co: k8s.CustomObjectsApi) -> tuple[list[dict[str, Any]],
                                                             list[dict[str, Any]]]:
        slices = co.list_cluster_custom_object(G, V, "slices")["items"]
        mss = co.list_cluster_custom_object(G, V, "memberslices",
                                            label_selector=SLICE_LABEL)["items"]
        found = allocation_problems(slices, mss)
        with self.lock:
            found += self._moved(slices, mss)
            self.samples += 1
            for v in found:
                if v not in self.violations:
                    self.violations.append(v)
                    names = re.findall(r"(?:Slice |MemberSlice [^/ ]+/)([a-z0-9.-]+)", v)
                    self.evidence[v] = (f"first seen {time.monotonic() - self.t0:.2f} s after "
                                        f"the storm began ({self.phase}): "
                                        + describe(slices, mss, names))
        return slices, mss

    def _moved(self, slices: Sequence[Mapping[str, Any]],
               member_slices: Sequence[Mapping[str, Any]]) -> list[str]:
        moved = []
        for s in slices:
            st = s.get("status") or {}
            if not st.get("cidr"):
                continue
            now = (st["cidr"], {m["name"]: m.get("subnet") for m in st.get("members") or []})
            was = self.first.setdefault(s["metadata"]["uid"], now)
            if was[0] != now[0] or any(now[1].get(m) not in (None, sub)
                                       for m, sub in was[1].items()):
                moved.append(f"Slice {s['metadata']['name']} moved: {was} -> {now}")
        for ms in member_slices:
            spec = ms.get("spec") or {}
            now_ms = (spec.get("cidr"), spec.get("subnet"))
            was_ms = self.first.setdefault(ms["metadata"]["uid"], now_ms)
            if was_ms != now_ms:
                moved.append(f"MemberSlice {ms['metadata']['namespace']}/"
                              f"{ms['metadata']['name']} moved: {was_ms} -> {now_ms}")
        return moved

    def run(self) -> None:
        try:
            with api_client(self.kubeconfig) as c:
                co = k8s.CustomObjectsApi(c)
                while not self.halt.is_set():
                    with contextlib.suppress(ApiException):
                        self.list_once(co)
                    self.halt.wait(self.interval)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():  # safe in a finally before start()
            self.join(30)


# -- one whole run -------------------------------------------------------------------------------
@dataclass
class Result:
    kill_at: int | None
    storm_seconds: float = 0.0
    converge_from_start: float = 0.0
    converge_from_storm_end: float = 0.0
    converge_from_restart: float | None = None
    allocated_at_kill: int | None = None
    member_slices_at_kill: int | None = None
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    evidence: dict[str, str] = field(default_factory=dict)
    not_converged: list[str] = field(default_factory=list)
    final_problems: list[str] = field(default_factory=list)
    rounds: dict[str, int] = field(default_factory=dict)
    samples: int = 0


def run_storm(kubeconfig: Path, log: Path, kill_at: int | None, count: int = 100,
              gap: float = 0.03, timeout: float = 180.0, say: Callable[[str], None] = print
              ) -> Result:
    """Controller up; storm (SIGKILL after creation `kill_at`, then start it again at once);
    wait until converged or `timeout` s after the storm; the figures and what was wrong.
    Every thread and process it starts is stopped before it returns, also on failure."""
    res = Result(kill_at=kill_at)
    ctl = Controller(kubeconfig, log)
    agents = FakeAgents(kubeconfig)
    watcher = Watcher(kubeconfig)
    killed = threading.Event()
    restart_at: list[float] = []

    def at_creation(k: int) -> None:
        if k != kill_at:
            return
        ctl.kill()
        watcher.phase = f"controller SIGKILLed after creation {k}"
        with api_client(kubeconfig) as c:  # what the controller had done when it died
            slices, mss = watcher.list_once(k8s.CustomObjectsApi(c))
        res.allocated_at_kill = sum(1 for s in slices if (s.get("status") or {}).get("cidr"))
        res.member_slices_at_kill = len(mss)
        ctl.start()
        watcher.phase = f"controller restarted after creation {k}"
        restart_at.append(time.monotonic())
        killed.set()

    storm = Storm(kubeconfig, count=count, gap=gap, at_creation=at_creation)
    try:
        ctl.start()
        with api_client(kubeconfig) as c:
            co = k8s.CustomObjectsApi(c)
            wait_active(co, k8s.CoordinationV1Api(c), ctl.identity)
            agents.start()
            watcher.t0 = time.monotonic()
            watcher.phase = "storm, first controller"
            watcher.start()
            storm.start()
            storm.join(timeout)
            assert not storm.is_alive(), "the storm did not end"
            if storm.error is not None:
                raise storm.error
            res.storm_seconds = storm.ended_at - storm.started_at
            if kill_at is not None:
                assert killed.is_set(), f"no kill: the storm made {len(storm.created)} slices"
            res.kept, res.deleted = storm.kept(), list(storm.deleted)
            watcher.phase += ", storm over"
            say(f"storm: {len(storm.created)} created, {len(storm.deleted)} deleted in "
                f"{res.storm_seconds:.2f} s" + (
                    f"; SIGKILL after creation {kill_at}: {res.allocated_at_kill} slices "
                    f"allocated, {res.member_slices_at_kill} MemberSlices at that moment"
                    if kill_at is not None else ""))
            deadline = storm.ended_at + timeout
            pending: list[str] = ["not checked yet"]
            while time.monotonic() < deadline:
                slices, mss = watcher.list_once(co)
                pending = convergence_problems(slices, mss, res.kept, res.deleted)
                if not pending:
                    break
                assert ctl.proc is not None and ctl.proc.poll() is None, (
                    f"the controller exited with {ctl.proc and ctl.proc.returncode}")
                time.sleep(0.2)
            done = time.monotonic()
            res.not_converged = pending
            res.converge_from_start = done - storm.started_at
            res.converge_from_storm_end = done - storm.ended_at
            if restart_at:
                res.converge_from_restart = done - restart_at[0]
            # the final state once more, listed after convergence
            slices, mss = watcher.list_once(co)
            res.final_problems = allocation_problems(slices, mss)
    finally:
        storm.join(5)
        watcher.stop()
        agents.stop()
        ctl.stop()
    res.violations = list(watcher.violations)
    res.evidence = dict(watcher.evidence)
    res.samples = watcher.samples
    res.rounds = ctl.rounds()
    for t in (agents, watcher):
        if t.error is not None:
            raise t.error
    return res
