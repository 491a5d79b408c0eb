"""Pod status as the kubelet reports it, computed from the lab's runtime view of a pod.

Pure (apart from reading the clock for transition times): phase, conditions (with stable
lastTransitionTime), and containerStatuses with state, lastState, ready and restartCount,
in the shapes `kubectl get/describe/wait` read.
"""

from __future__ import annotations

import time
from typing import Any

Obj = dict[str, Any]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def container_status(c: Any, name: str, image: str, waiting: tuple[str, str]) -> Obj:
    """One entry of containerStatuses; ``c`` is a runtime.ContainerRun or None."""
    out: Obj = {"name": name, "image": image, "imageID": f"wgslice-lab/{image}",
                "restartCount": 0, "ready": False, "started": False, "state": {},
                "lastState": {}}
    if c is None:
        reason, message = waiting
        out["state"] = {"waiting": {"reason": reason, **({"message": message} if message
                                                          else {})}}
        return out
    out["restartCount"] = c.restart_count
    out["lastState"] = c.last_state if c.restart_count else {}
    if c.proc is not None:
        out["containerID"] = f"wgslice-lab://{c.proc.pid}"
    if c.running:
        out["state"] = {"running": {"startedAt": c.started_at}}
        out["ready"] = c.ready
        out["started"] = True
    elif c.terminated is not None and not c.waiting_reason:
        out["state"] = {"terminated": c.terminated}
    else:
        reason = c.waiting_reason or "ContainerCreating"
        w: Obj = {"reason": reason}
        if c.waiting_message:
            w["message"] = c.waiting_message
        out["state"] = {"waiting": w}
    return out


def _cond(run: Any, ctype: str, ok: bool, reason: str = "") -> Obj:
    status = "True" if ok else "False"
    prev = run.cond_times.get(ctype)
    if prev is None or prev[0] != status:
        prev = (status, _now())
        run.cond_times[ctype] = prev
    cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": prev[1]}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def pod_phase(run: Any) -> str:
    if not run.started or not run.initialized:
        if run.started and any(c.terminated and c.terminated.get("exitCode") != 0 and
                               run.restart_policy == "Never" for c in run.inits):
            return "Failed"
        return "Pending"
    cs = run.containers
    if any(c.running for c in cs):
        return "Running"
    if any(c.proc is None for c in cs):
        return "Pending"
    restarting = [c for c in cs if c.terminated is not None and (
        run.restart_policy == "Always" or (run.restart_policy == "OnFailure" and
                                           c.terminated.get("exitCode") != 0))]
    if restarting:
        return "Running"
    if all((c.terminated or {}).get("exitCode") == 0 for c in cs):
        return "Succeeded"
    return "Failed"


def pod_status(run: Any) -> Obj:
    """The whole ``status`` of a pod (merge-patched onto pods/status)."""
    by_name = {c.plan.name: c for c in run.containers}
    init_by_name = {c.plan.name: c for c in run.inits}
    statuses = [container_status(by_name.get(n), n, run.images.get(n, ""), run.waiting)
                for n in run.names]
    init_statuses = [container_status(init_by_name.get(n), n, run.images.get(n, ""),
                                      run.waiting) for n in run.init_names]
    for s, n in zip(init_statuses, run.init_names, strict=True):
        c = init_by_name.get(n)
        if c is not None and c.terminated and c.terminated.get("exitCode") == 0:
            s["state"] = {"terminated": c.terminated}
            s["ready"] = True
    all_ready = bool(statuses) and all(s["ready"] for s in statuses)
    phase = pod_phase(run)
    status: Obj = {
        "phase": phase,
        "hostIP": run.node.ip,
        "hostIPs": [{"ip": run.node.ip}],
        "startTime": run.start_time or _now(),
        "conditions": [
            _cond(run, "PodReadyToStartContainers", bool(run.netns)),
            _cond(run, "Initialized", run.initialized or not run.init_names,
                  "ContainersNotInitialized"),
            _cond(run, "Ready", all_ready and phase == "Running", "ContainersNotReady"),
            _cond(run, "ContainersReady", all_ready, "ContainersNotReady"),
            _cond(run, "PodScheduled", True),
        ],
        "containerStatuses": statuses,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if run.ip:
        status["podIP"] = run.ip
        status["podIPs"] = [{"ip": run.ip}]
    return status
