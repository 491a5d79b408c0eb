"""Fault: the hub controller SIGKILLed during a storm of 100 slice creations and deletions
(issue 14, item 3, first fault).

Against a real control plane (etcd, kube-apiserver, kube-controller-manager built from
source, `control_plane` in tests/conftest.py): CRDs, the default pool and three
MemberClusters; `python -m wgslice controller` as a process; the member agents' side of the
hub contract played by a thread (storm_helpers.FakeAgents). A thread creates 100 Slices and
deletes every third a few operations later; after creation number K (seeded random,
``WGSLICE_STORM_SEED``, default 14) the controller is SIGKILLed and started again at once,
with the same identity, as a restarted container. Then, within 180 s of the storm's end:

- every kept Slice is Allocated and Ready for its generation, with one MemberSlice per member
  carrying its subnet; every deleted Slice is gone (finalizers released) and no MemberSlice
  of it remains;
- at no listing during the whole run (every 0.3 s, and at the kill) did two slices' CIDRs
  overlap (deleting ones included: their CIDR stays reserved until they are gone), two
  member subnets of a slice overlap, a subnet lie outside its slice's CIDR, two MemberSlices
  of different slices carry overlapping subnets, or an allocation move.

The time to converge is printed (`-s`), not asserted: timings are in docs/benchmarks.md
(bench/bench_storm.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s
from storm_helpers import (
    Controller,
    FakeAgents,
    G,
    V,
    Watcher,
    allocation_problems,
    api_client,
    convergence_problems,
    run_storm,
    setup_hub,
    slice_doc,
    wait_for,
)

from wgslice.lab.standalone import ControlPlane

# `slow`, as the other tests on `control_plane` (tests/hub, tests/member, tests/crd): the
# control plane runs on loopback without root or network namespaces, so not `root`.
pytestmark = pytest.mark.slow

SLICES = 100
SEED = int(os.environ.get("WGSLICE_STORM_SEED", "14"))


def test_controller_sigkilled_during_a_storm_of_slices(
    control_plane: Callable[..., ControlPlane], tmp_path: Path
) -> None:
    kubeconfig = setup_hub(control_plane("hub"), tmp_path)
    kill_at = random.Random(SEED).randint(SLICES // 5, SLICES * 4 // 5)
    log = tmp_path / "controller.log"
    try:
        res = run_storm(kubeconfig, log, kill_at=kill_at, count=SLICES, timeout=180.0)
    finally:
        print(f"controller log: {log}")
    print(f"seed {SEED}: SIGKILL after creation {kill_at}; converged "
          f"{res.converge_from_restart:.1f} s after the restart, "
          f"{res.converge_from_storm_end:.1f} s after the storm's end "
          f"({res.samples} listings checked); rounds {res.rounds}")
    print(f"converged: {not res.not_converged}; overlaps in the converged state: "
          f"{len(res.final_problems)}; overlapping or moved allocations seen while it ran: "
          f"{len(res.violations)}")
    failures = []
    if res.not_converged:
        failures.append(f"not converged 180 s after the storm ({len(res.not_converged)} "
                        "problems):\n  " + "\n  ".join(res.not_converged[:40]))
    if res.final_problems:
        failures.append("overlaps in the converged state:\n  "
                        + "\n  ".join(res.final_problems))
    if res.violations:
        failures.append("overlapping or moved allocations while it ran:\n  " + "\n  ".join(
            f"{v}\n    {res.evidence.get(v, '')}" for v in res.violations))
    assert not failures, f"seed {SEED}, kill after creation {kill_at}, controller log {log}\n" \
        + "\n".join(failures)
    assert len(res.kept) == SLICES - SLICES // 3 and len(res.deleted) == SLICES // 3


BURST = 60


def test_sigkill_between_member_slice_writes_and_status(
    control_plane: Callable[..., ControlPlane], tmp_path: Path
) -> None:
    """The same fault aimed at one window: a round that plans many slices at once. 60
    Slices wait for the controller, which then plans them all in one round; it is SIGKILLed
    as soon as the first MemberSlice appears. At that moment every MemberSlice's range must
    already be recorded in its Slice's status (slice/hubapi.py `execute` writes statuses
    first; until 2026-12-05 it wrote MemberSlices first, and a kill in between left ranges
    no Slice recorded). The first slice with MemberSlices is then deleted, and the
    controller started again: the deleting slice's MemberSlices keep its CIDR until the
    member agents let go, and no MemberSlice changes its subnet."""
    kubeconfig = setup_hub(control_plane("hub"), tmp_path)
    log = tmp_path / "controller.log"
    ctl = Controller(kubeconfig, log)
    agents, watcher = FakeAgents(kubeconfig), Watcher(kubeconfig)
    try:
        with api_client(kubeconfig) as c:
            co = k8s.CustomObjectsApi(c)
            names = [f"burst-{i:03d}" for i in range(BURST)]
            for name in names:
                co.create_cluster_custom_object(G, V, "slices", slice_doc(name))
            agents.start()
            ctl.start()
            wait_for("the controller's first MemberSlice", lambda: co.list_cluster_custom_object(
                G, V, "memberslices", limit=1)["items"], timeout=60, interval=0.01)
            ctl.kill()
            watcher.t0, watcher.phase = time.monotonic(), "controller SIGKILLed mid-round"
            slices, mss = watcher.list_once(co)
            recorded = {s["metadata"]["name"] for s in slices if (s.get("status") or {}).get(
                "cidr")}
            unrecorded = sorted({ms["spec"]["slice"] for ms in mss} - recorded)
            written = sorted({m["spec"]["slice"] for m in mss})
            print(f"at the kill: {len(mss)} MemberSlices of {len(written)} slices, "
                  f"{len(recorded)} slices with status.cidr")
            assert written, "no MemberSlice at the kill"
            assert not unrecorded, f"MemberSlices whose range no Slice records: {unrecorded}"
            victim = written[0]
            co.delete_cluster_custom_object(G, V, "slices", victim)
            watcher.start()
            ctl.start()
            watcher.phase = f"controller restarted, {victim} deleted"
            t0 = time.monotonic()
            kept = [n for n in names if n != victim]
            pending: list[str] = []

            def converged() -> bool:
                nonlocal pending
                pending = convergence_problems(*watcher.list_once(co), kept, [victim])
                return not pending

            with contextlib.suppress(AssertionError):
                wait_for("convergence", converged, timeout=180, interval=0.2)
            print(f"converged {time.monotonic() - t0:.1f} s after the restart: {not pending}")
            final = allocation_problems(*watcher.list_once(co))
    finally:
        watcher.stop()
        agents.stop()
        ctl.stop()
        print(f"controller log: {log}")
    failures = []
    if pending:
        failures.append("not converged:\n  " + "\n  ".join(pending[:40]))
    if final:
        failures.append("overlaps in the converged state:\n  " + "\n  ".join(final))
    if watcher.violations:
        failures.append("overlapping or moved allocations while it ran:\n  " + "\n  ".join(
            f"{v}\n    {watcher.evidence.get(v, '')}" for v in watcher.violations))
    assert not failures, f"deleted {victim}; controller log {log}\n" + "\n".join(failures)
