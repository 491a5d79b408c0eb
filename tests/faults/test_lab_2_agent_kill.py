"""Fault: a member agent SIGKILLed in the middle of a round (issue 14, item 3).

On the package's lab (tests/faults/conftest.py), a slice `akill` over c1 and c2 with the
namespace `akill` (a `web` pod in each member) is set up once without a fault (the
reference: what an uninterrupted agent produces), then once per kill point, each time
SIGKILLing c1's member agent as soon as the point is seen in the API (polled every few
tens of milliseconds), while its round for the new slice is under way:

  memberslice  the hub has written c1's MemberSlice (the agent's round starts on its watch)
  key          the gateway's key Secret exists (the round's first write)
  labelled     the namespace carries the slice label (after the MemberSlice finalizer)
  deployment   the gateway Deployment exists (after ConfigMaps and annotations)

The lab kubelet restarts the agent (restartPolicy Always, back-off). Then, within 120 s:
nothing half-applied remains (agent_state.half_applied defines it), and c1 holds exactly
what the reference run produced (agent_state.member_state; keys masked, being fresh per
slice). Deleting the slice must then leave nothing (agent_state.leftovers). Printed per
kill: what the API showed at the kill, kill -> restart and restart -> converged.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator

import pytest
from agent_state import half_applied, leftovers, member_state
from fault_lab import SYSTEM, WGS, FaultLab, wait_for

NAME = "akill"
SLICE_MEMBERS = ["c1", "c2"]
VICTIM, PEER = "c1", "c2"

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2"),
]


def _exists(fl: FaultLab, cluster: str, path: str) -> bool:
    try:
        fl.get(cluster, path)
    except OSError as exc:  # urllib's HTTPError 404 is an OSError
        if getattr(exc, "code", None) == 404:
            return False
        raise
    return True


POINTS: dict[str, Callable[[FaultLab], bool]] = {
    "memberslice": lambda fl: fl.member_slice(VICTIM, NAME) is not None,
    "key": lambda fl: _exists(fl, VICTIM, f"/api/v1/namespaces/{SYSTEM}/secrets/"
                                          f"wgslice-gw-{NAME}-key"),
    "labelled": lambda fl: (fl.get(VICTIM, f"/api/v1/namespaces/{NAME}")["metadata"]
                            .get("labels") or {}).get("wgslice.io/slice") == NAME,
    "deployment": lambda fl: _exists(fl, VICTIM, f"/apis/apps/v1/namespaces/{SYSTEM}/"
                                                 f"deployments/wgslice-gw-{NAME}"),
}


def _slice() -> dict[str, object]:
    return {"apiVersion": "wgslice.io/v1alpha1", "kind": "Slice", "metadata": {"name": NAME},
            "spec": {"members": SLICE_MEMBERS, "namespaces": [{"name": NAME}]}}


def _workload() -> list[dict[str, object]]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAME}},
            {"apiVersion": "apps/v1", "kind": "DaemonSet",
             "metadata": {"name": "web", "namespace": NAME},
             "spec": {"selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [{"name": "web",
                                                            "image": "busybox:1.36"}]}}}}]


def _gone(fl: FaultLab) -> list[str]:
    out = [f"Slice {NAME}"] if any(s["metadata"]["name"] == NAME
                                   for s in fl.items("hub", f"{WGS}/slices")) else []
    return out + [f"{m}: {x}" for m in SLICE_MEMBERS for x in leftovers(fl, m, NAME, [NAME])]


def _delete_and_check(fl: FaultLab) -> None:
    """Deletes the slice; nothing of it may remain in either member or on the hub."""
    fl.kubectl("delete", "slice", NAME, "--ignore-not-found", "--wait=false")
    remaining: list[str] = []

    def clean() -> bool:
        nonlocal remaining
        remaining = _gone(fl)
        return not remaining

    wait_for(clean, 90, f"slice {NAME} and everything of it gone", 0.5)


@pytest.fixture
def workload(fl: FaultLab) -> Iterator[FaultLab]:
    """The namespace `akill` with its pods in both members, no slice `akill`; the slice is
    deleted again however the test ends."""
    for m in SLICE_MEMBERS:
        fl.apply(m, _workload())
        fl.lab.wait_ready(m, "app=web", namespace=NAME, count=1, timeout=60)
    _delete_and_check(fl)
    try:
        yield fl
    finally:
        fl.kubectl("delete", "slice", NAME, "--ignore-not-found", "--wait=false")


def _converge(fl: FaultLab, timeout: float = 120.0) -> float:
    t0 = time.monotonic()
    problems: list[str] = []

    def done() -> bool:
        nonlocal problems
        problems = half_applied(fl, VICTIM, PEER, NAME, [NAME])
        return not problems

    try:
        wait_for(done, timeout, "c1 converged", 0.25)
    except TimeoutError:
        raise AssertionError(f"half-applied {timeout:.0f} s on:\n  " + "\n  ".join(problems)
                             ) from None
    return time.monotonic() - t0


def _settled_state(fl: FaultLab) -> dict[str, object]:
    """c1's state a round or two after convergence, read at a moment when it is still
    converged (half_applied empty just after the read): a tunnel health flap under load
    (a probe lost while two cores are busy) is a measurement, not applied state, and must
    not make the reference or a run differ. Bounded: 10 tries, 2 s apart."""
    problems: list[str] = []
    for _ in range(10):
        time.sleep(2)  # a round or two more: the agent's settled output
        state = member_state(fl, VICTIM, NAME, [NAME])
        problems = half_applied(fl, VICTIM, PEER, NAME, [NAME])
        if not problems:
            return state
    raise AssertionError("c1 did not stay converged for 20 s:\n  " + "\n  ".join(problems))


def _diff(ref: dict[str, object], got: dict[str, object]) -> str:
    a = json.dumps(ref, indent=1, sort_keys=True).splitlines()
    b = json.dumps(got, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "uninterrupted", "after the kill", lineterm=""))


def test_member_agent_sigkilled_mid_round(workload: FaultLab) -> None:
    fl = workload
    fl.apply("hub", [_slice()])
    t_ref = _converge(fl)
    reference = _settled_state(fl)
    fl.collect_keys()
    _delete_and_check(fl)
    lines = [f"uninterrupted: apply -> converged {t_ref:.1f} s"]
    failures = []
    for point, seen in POINTS.items():
        pid = fl.agent_pid(VICTIM)
        fl.apply("hub", [_slice()])
        wait_for(lambda s=seen: s(fl), 60, f"kill point {point}", 0.02)
        killed = fl.kill_agent(VICTIM, pid)
        t_kill = time.monotonic()
        at_kill = sorted(p for p, s in POINTS.items() if s(fl))
        wait_for(lambda k=killed: fl.agent_pid(VICTIM) not in (0, k), 60,
                 "the agent restarted", 0.05)
        t_restart = time.monotonic()
        took = _converge(fl)
        got = _settled_state(fl)
        fl.collect_keys()
        lines.append(f"kill at {point:<11} (API showed {', '.join(at_kill)}): restarted "
                     f"{t_restart - t_kill:.1f} s after the kill, converged {took:.1f} s "
                     "after the restart")
        if got != reference:
            failures.append(f"kill at {point}: c1 differs from the uninterrupted run:\n"
                            + _diff(reference, got))
        _delete_and_check(fl)
    print("\nmember agent of c1 SIGKILLed mid-round:\n  " + "\n  ".join(lines))
    assert not failures, "\n".join(failures)
