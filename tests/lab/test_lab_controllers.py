"""Scheduling predicates and pod status of the lab's controllers and kubelet (pure)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

from wgslice.lab.controllers import matches, node_fits, template_hash, tolerates
from wgslice.lab.podspec import ContainerPlan
from wgslice.lab.podstatus import pod_phase, pod_status
from wgslice.lab.runtime import ContainerRun
from wgslice.lab.topology import plan_lab

GW = {"metadata": {"name": "c1-node-1", "labels": {"wgslice.io/gateway": "true"}},
      "spec": {}}
TAINTED = {"metadata": {"name": "c1-node-2", "labels": {}},
           "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}}


def test_node_selector_and_taints() -> None:
    assert node_fits({"nodeSelector": {"wgslice.io/gateway": "true"}}, GW)
    assert not node_fits({"nodeSelector": {"wgslice.io/gateway": "true"}}, TAINTED)
    assert not node_fits({}, TAINTED)
    assert node_fits({"tolerations": [{"operator": "Exists"}]}, TAINTED)
    assert node_fits({"tolerations": [{"key": "dedicated", "value": "x"}]}, TAINTED)
    assert not tolerates([{"key": "dedicated", "value": "y"}], TAINTED["spec"]["taints"][0])
    assert not node_fits({}, {"metadata": {"name": "n"}, "spec": {"unschedulable": True}})


def test_required_node_affinity() -> None:
    spec = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "wgslice.io/gateway", "operator": "Exists"}]}]}}}}
    assert node_fits(spec, GW)
    assert not node_fits(spec, {"metadata": {"name": "w", "labels": {}}, "spec": {}})


def test_label_selector() -> None:
    sel = {"matchLabels": {"app": "x"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                {"key": "old", "operator": "DoesNotExist"}]}
    assert matches(sel, {"app": "x", "tier": "a"})
    assert not matches(sel, {"app": "x", "tier": "c"})
    assert not matches(sel, {"app": "x", "tier": "a", "old": "1"})


def test_template_hash_is_stable_and_dns_safe() -> None:
    t = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a"}]}}
    h = template_hash(t)
    assert h == template_hash(dict(t)) and h.isalnum() and h.islower() and len(h) == 10
    assert h != template_hash({**t, "spec": {"containers": [{"name": "b"}]}})


def _run(tmp_path: Path, policy: str, containers: list[ContainerRun]) -> SimpleNamespace:
    node = plan_lab(1, 1).cluster("c1").nodes[0]
    return SimpleNamespace(started=True, initialized=True, inits=[], init_names=[],
                           containers=containers, names=[c.plan.name for c in containers],
                           images={c.plan.name: "img" for c in containers},
                           restart_policy=policy, node=node, ip="10.244.0.2",
                           netns="ns", start_time="t", cond_times={},
                           waiting=("ContainerCreating", ""))


def _container(tmp_path: Path, name: str, argv: list[str]) -> ContainerRun:
    c = ContainerRun(plan=ContainerPlan(name, argv, {}), log_path=tmp_path / name)
    c.proc = subprocess.Popen(argv)
    return c


def test_pod_status_running_then_terminated(tmp_path: Path) -> None:
    c = _container(tmp_path, "a", ["sleep", "30"])
    run = _run(tmp_path, "Never", [c])
    status = pod_status(run)
    assert status["phase"] == "Running" and status["podIP"] == "10.244.0.2"
    assert status["hostIP"] == "172.20.1.11"
    ready = {k["type"]: k["status"] for k in status["conditions"]}
    assert ready["Ready"] == "True" and ready["ContainersReady"] == "True"
    cs = status["containerStatuses"][0]
    assert cs["ready"] and "running" in cs["state"] and cs["restartCount"] == 0
    c.proc.kill()
    c.proc.wait()
    c.terminated = {"exitCode": 137, "reason": "Error"}
    assert pod_phase(run) == "Failed"
    run.restart_policy = "Always"
    assert pod_phase(run) == "Running"
    status = pod_status(run)
    assert {k["type"]: k["status"] for k in status["conditions"]}["Ready"] == "False"


def test_pod_status_before_start(tmp_path: Path) -> None:
    run = _run(tmp_path, "Always", [])
    run.started = False
    run.names = ["a"]
    run.waiting = ("CreateContainerConfigError", "secret 's' not found")
    status = pod_status(run)
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == \
        "CreateContainerConfigError"
