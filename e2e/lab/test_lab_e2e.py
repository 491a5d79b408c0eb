"""The lab end to end: real kubectl, pods as namespaces, isolation, project pods, `down`.

One lab (hub + 2 members x 2 nodes, prefix ``wgstest-``, temp state dir) per module; the
fixture's finalizer runs `down` also when a test fails. `test_zz_down_leaves_nothing` checks
that `down` leaves nothing behind; a test after it (WGSLICE_E2E_ORDER=reverse, or one picked
with -k) gets the lab made again, so each test runs alone or in any order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from wgslice.errors import UserError
from wgslice.lab import Lab
from wgslice.lab import layout as topo
from wgslice.lab import netns as nx
from wgslice.lab.up import load_plan

PREFIX = "wgstest-"
pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2"),
]

ECHO = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: default}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {cluster}-node-2}}
      containers:
      - name: echo
        image: wgslice/wgslice:0.1.0
        command: [python3, -m, wgslice.lab.podtools, serve, "8080", --greeting, {cluster}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: default, labels: {{app: client}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {cluster}-node-1}}
  containers:
  - {{name: idle, image: busybox:1.36}}
"""

PROJECT = (Path(__file__).parent / "project_pod.yaml").read_text()


@pytest.fixture(scope="module")
def lab_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The module's lab, not necessarily up; `down` at the end, also when a test fails."""
    state = tmp_path_factory.mktemp("lab") / "state"
    handle = Lab(state_dir=state, prefix=PREFIX, port_base=19443)
    handle.down()  # leftovers of an interrupted earlier run with the same prefix
    try:
        yield handle
    finally:
        handle.down()


@pytest.fixture
def lab(lab_handle: Lab) -> Lab:
    """The module's lab, up: made by the first test that needs it, and made again when an
    earlier test took it down (test_zz_down_leaves_nothing). A new lab is ready for the
    tests' pods (the ServiceAccount admission refuses pods until the namespace's `default`
    ServiceAccount exists) and gets the echo pods first (see `echo`)."""
    if load_plan(lab_handle.dirs) is None:
        t0 = time.monotonic()
        lab_handle.up(members=2, nodes=2, timeout=180)
        lab_handle.up_seconds = time.monotonic() - t0  # type: ignore[attr-defined]  # the fixture notes how long `up` took on the handle
        for cluster in ("c1", "c2"):
            for namespace in ("default", "kube-system"):
                _wait_service_account(lab_handle, cluster, namespace)
        for cluster in ("c1", "c2"):
            _apply(lab_handle, cluster, ECHO.format(cluster=cluster))
    return lab_handle


def _wait_service_account(lab: Lab, cluster: str, namespace: str, timeout: float = 60.0
                          ) -> None:
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    deadline = time.monotonic() + timeout
    while True:
        try:
            lab.api_get(cluster, path)
            return
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _apply(lab: Lab, context: str, manifest: str) -> None:
    lab.kubectl("apply", "-f", "-", context=context, input=manifest)


def _probe(lab: Lab, cluster: str, pod: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(cluster, "default", pod, [*lab.probe(), *args])


def test_up_ready_and_idempotent(lab: Lab) -> None:
    # How fast `up` is belongs to bench/bench_lab.py (docs/benchmarks.md), not to a
    # pass/fail test: four real API servers starting on two shared cores vary 10-40 s.
    print(f"lab up took {lab.up_seconds:.1f} s")  # type: ignore[attr-defined]  # set by the lab fixture
    plan = lab.plan
    assert plan.cluster_names == ["hub", "c1", "c2"]
    t0 = time.monotonic()
    assert lab.up(members=2, nodes=2).cluster_names == plan.cluster_names
    assert time.monotonic() - t0 < 2
    with pytest.raises(UserError, match=r"already exists.*lab down"):
        lab.up(members=3, nodes=2)
    nodes = lab.kubectl("get", "nodes", "-o", "json", context="c1").stdout
    items = json.loads(nodes)["items"]
    assert sorted(n["metadata"]["name"] for n in items) == ["c1-node-1", "c1-node-2"]
    gw = [n for n in items if n["metadata"]["labels"].get("wgslice.io/gateway") == "true"]
    assert [n["metadata"]["name"] for n in gw] == ["c1-node-1"]
    addrs = {a["type"]: a["address"] for a in gw[0]["status"]["addresses"]}
    assert addrs == {"InternalIP": "172.20.1.11", "ExternalIP": "198.51.100.21",
                     "Hostname": "c1-node-1"}


def test_kubectl_deployment_becomes_ready(lab: Lab) -> None:
    manifest = ECHO.format(cluster="c1").replace("name: echo", "name: web").replace(
        "app: echo", "app: web").replace("replicas: 1", "replicas: 2").replace(
        "nodeSelector: {kubernetes.io/hostname: c1-node-2}", "nodeSelector: {}")
    _apply(lab, "c1", manifest.split("---")[0])
    lab.wait_ready("c1", "app=web", count=2, timeout=30)
    lab.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=30s",
                context="c1")
    deploy = json.loads(lab.kubectl("get", "deployment", "web", "-o", "json",
                                    context="c1").stdout)
    assert deploy["status"]["readyReplicas"] == 2
    pods = lab.pods("c1", "app=web")
    assert {p["spec"]["nodeName"] for p in pods} == {"c1-node-1", "c1-node-2"}
    described = lab.kubectl("describe", "pod", pods[0]["metadata"]["name"], context="c1")
    assert "Ready" in described.stdout and "Running" in described.stdout
    assert "Scheduled" in described.stdout and "Started" in described.stdout  # events
    netns = {lab.pod_record("c1", "default", p["metadata"]["name"])["netns"] for p in pods}
    assert {p["metadata"]["annotations"]["wgslice.io/lab-netns"] for p in pods} == netns
    assert all(nx.exists(n) for n in netns)
    lab.kubectl("delete", "deployment", "web", context="c1")
    deadline = time.monotonic() + 20
    while (lab.pods("c1", "app=web") or any(nx.exists(n) for n in netns)) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert not lab.pods("c1", "app=web")
    assert not any(nx.exists(n) for n in netns)
    # The host-side veths go with the namespaces; the kernel tears a namespace's devices
    # down asynchronously (its cleanup work queue), so allow it a few seconds.
    veths = {topo.pod_host_veth(p["metadata"]["uid"]) for p in pods}

    def leftover() -> set[str]:
        links = "".join(lab.node_exec("c1", node, ["ip", "-br", "link"]).stdout
                        for node in ("c1-node-1", "c1-node-2"))
        return {v for v in veths if v in links}

    deadline = time.monotonic() + 10
    while leftover() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leftover()


def _wait_named(lab: Lab, cluster: str, selector: str, name: str, timeout: float = 30.0
                ) -> dict:
    """The Ready pod `name` among those matching `selector`."""
    deadline = time.monotonic() + timeout
    while True:
        ready = lab.wait_ready(cluster, selector, timeout=timeout)
        pod = next((p for p in ready if p["metadata"]["name"] == name), None)
        if pod is not None:
            return pod
        if time.monotonic() > deadline:
            raise TimeoutError(f"{cluster}: pod {name} ({selector}) not Ready")
        time.sleep(0.1)


@pytest.fixture
def echo(lab: Lab) -> dict[str, dict[str, str]]:
    """An echo server on node 2 and an idle client on node 1, in both members: made by `lab`
    before any other pod, so that they get the same addresses in both members whichever
    tests ran before. The client is picked by name: another test adds an `app=client` pod."""
    out = {}
    for cluster in ("c1", "c2"):
        server = lab.wait_ready(cluster, "app=echo")[0]
        client = _wait_named(lab, cluster, "app=client", "client")
        out[cluster] = {"server_ip": server["status"]["podIP"],
                        "client_ip": client["status"]["podIP"]}
    return out


def test_pod_to_pod_and_node_inside_a_cluster(lab: Lab, echo: dict) -> None:
    c1 = echo["c1"]
    assert c1 == echo["c2"]  # identical pod CIDRs and IPs in both members
    ping = _probe(lab, "c1", "client", "ping", "-c", "2", "-W", "1", c1["server_ip"])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    tcp = _probe(lab, "c1", "client", "tcp", c1["server_ip"], "8080")
    assert tcp.stdout.strip() == f"c1 from={c1['client_ip']}"  # source address preserved
    for target in ("172.20.1.11", "172.20.1.12", "172.20.1.1"):  # nodes and the API
        assert _probe(lab, "c1", "client", "ping", "-W", "1", target).returncode == 0
    api = _probe(lab, "c1", "client", "connect", "172.20.1.1", "6443")
    assert api.returncode == 0
    hub = _probe(lab, "c1", "client", "connect", "198.51.100.1", "6443")  # hub API over WAN
    assert hub.returncode == 0, hub.stderr


def test_clusters_are_isolated_even_with_identical_pod_cidrs(lab: Lab, echo: dict) -> None:
    # The same address answers from the client's own cluster, never the other one.
    for cluster, other in (("c1", "c2"), ("c2", "c1")):
        tcp = _probe(lab, cluster, "client", "tcp", echo[other]["server_ip"], "8080")
        assert tcp.stdout.startswith(f"{cluster} "), tcp.stdout
    # An address that exists only in c2 is unreachable from c1.
    _apply(lab, "c2", ECHO.format(cluster="c2").split("---")[1].replace(
        "name: client", "name: only-c2"))
    only = lab.wait_ready("c2", "app=client", count=2)
    addr = next(p["status"]["podIP"] for p in only if p["metadata"]["name"] == "only-c2")
    assert addr not in (echo["c1"]["client_ip"], echo["c1"]["server_ip"])
    assert _probe(lab, "c1", "client", "ping", "-W", "0.5", addr).returncode != 0
    assert _probe(lab, "c1", "client", "connect", addr, "8080", "-W", "1").returncode != 0
    # The root namespace has no lab interface and no route into any cluster.
    assert nx.root_links(PREFIX) == []
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True)
    assert "172.20." not in routes.stdout and "10.244." not in routes.stdout


def test_project_pod_runs_entry_point_with_env_secret_configmap_token(lab: Lab) -> None:
    _apply(lab, "c2", PROJECT)
    pod = lab.wait_ready("c2", "app=proj", timeout=30)[0]
    deadline = time.monotonic() + 15
    while "RESULT " not in (log := lab.logs("c2", "default", "proj")) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    result = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])
    assert result["POD_NAME"] == "proj" and result["POD_NS"] == "default"
    assert result["NODE"] == pod["spec"]["nodeName"]
    assert result["POD_IP"] == pod["status"]["podIP"]
    assert result["HOST_IP"] == pod["status"]["hostIP"]
    assert result["PASSWORD"] == "hunter2" and result["MODE"] == "lab"
    assert result["secret_file"] == "secret-file" and result["cm_file"] == "a: 1"
    assert result["ns_file"] == "default" and result["ca"].startswith("-----BEGIN")
    assert result["KUBERNETES_SERVICE_HOST"] == "172.20.2.1"
    assert result["api"] in (200, 403)  # authenticated as the pod's ServiceAccount
    assert result["wgrun"] == []  # a private /var/run/wireguard
    assert result["python"] == sys.executable
    seen = lab.exec("c2", "default", "proj",
                    ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"])
    assert seen.stdout == "default"
    assert not os.path.exists("/run/secrets/kubernetes.io")  # only inside the pod


def test_restart_policy_and_crash_loop(lab: Lab) -> None:
    _apply(lab, "c1", """
apiVersion: v1
kind: Pod
metadata: {name: crash, namespace: default}
spec:
  restartPolicy: OnFailure
  containers:
  - {name: c, image: wgslice/wgslice, command: [sh, -c, "echo started; exit 3"]}
""")
    deadline = time.monotonic() + 15
    status: dict = {}
    while time.monotonic() < deadline:
        pods = [p for p in lab.pods("c1") if p["metadata"]["name"] == "crash"]
        status = (pods[0].get("status") or {}) if pods else {}
        cs = (status.get("containerStatuses") or [{}])[0]
        if cs.get("restartCount", 0) >= 1:
            break
        time.sleep(0.2)
    cs = status["containerStatuses"][0]
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    while lab.logs("c1", "default", "crash").count("started") < 2 and \
            time.monotonic() < deadline + 5:
        time.sleep(0.1)
    assert lab.logs("c1", "default", "crash").count("started") >= 2  # one log across restarts
    lab.kubectl("delete", "pod", "crash", "--wait=false", context="c1")


PROBED = """
apiVersion: v1
kind: Pod
metadata: {name: probed, namespace: default}
spec:
  containers:
  - name: tcp
    image: wgslice/wgslice
    command: [python3, -m, wgslice.lab.podtools, serve, "8080"]
    ports: [{name: echo, containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: echo}, periodSeconds: 1}
  - name: http
    image: wgslice/wgslice
    command: [python3, -m, http.server, "8081"]
    readinessProbe: {httpGet: {path: /, port: 8081}, periodSeconds: 1}
  - name: never
    image: wgslice/wgslice
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
  - name: dies
    image: wgslice/wgslice
    command: [sleep, "3600"]
    livenessProbe: {exec: {command: [test, -e, /nonexistent]}, periodSeconds: 1,
                    failureThreshold: 1}
"""


def test_probes(lab: Lab) -> None:
    _apply(lab, "c1", PROBED)
    deadline = time.monotonic() + 20
    ready: dict = {}
    restarts = 0
    while time.monotonic() < deadline:
        pod = lab.api_get("c1", "/api/v1/namespaces/default/pods/probed")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ready = {c["name"]: c["ready"] for c in statuses}
        restarts = next((c["restartCount"] for c in statuses if c["name"] == "dies"), 0)
        if ready.get("tcp") and ready.get("http") and restarts >= 1:
            break
        time.sleep(0.2)
    assert ready["tcp"] and ready["http"]
    assert ready["never"] is False
    assert restarts >= 1
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Ready"] == "False" and pod["status"]["phase"] == "Running"
    lab.kubectl("delete", "pod", "probed", "--wait=false", context="c1")


def test_daemonset_host_network_on_every_node(lab: Lab) -> None:
    _apply(lab, "c2", """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
      - name: agent
        image: wgslice/wgslice
        # a daemon leaving the container's session, as wireguard-go does by default
        command: [sh, -c, "echo $NODE > /run/wgslice-labtest/node; ls /var/run/netns;
                  setsid sleep 3331 </dev/null >/dev/null 2>&1 & exec sleep 3600"]
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        volumeMounts:
        - {name: netns, mountPath: /var/run/netns}
        - {name: state, mountPath: /run/wgslice-labtest}
      volumes:
      - {name: netns, hostPath: {path: /var/run/netns}}
      - {name: state, hostPath: {path: /run/wgslice-labtest, type: DirectoryOrCreate}}
""")
    pods = lab.wait_ready("c2", "app=agent", namespace="kube-system", count=2)
    assert {p["spec"]["nodeName"] for p in pods} == {"c2-node-1", "c2-node-2"}
    assert all(p["status"]["podIP"] == p["status"]["hostIP"] for p in pods)
    deadline = time.monotonic() + 10
    ds: dict = {}
    while time.monotonic() < deadline:
        ds = lab.api_get("c2", "/apis/apps/v1/namespaces/kube-system/daemonsets/agent")
        if (ds.get("status") or {}).get("numberReady") == 2:
            break
        time.sleep(0.1)
    assert ds["status"]["numberReady"] == 2
    assert _pgrep("sleep 3331")
    for p in pods:  # hostPath volumes are per node; /var/run/netns is the machine's
        node = p["spec"]["nodeName"]
        written = lab.dirs.node_fs("c2", node) / "run/wgslice-labtest/node"
        assert written.read_text().strip() == node
        assert f"{PREFIX}c2-node-1" in lab.logs("c2", "kube-system", p["metadata"]["name"])
    assert not os.path.exists("/run/wgslice-labtest/node")
    lab.kubectl("delete", "daemonset", "agent", "-n", "kube-system", context="c2")
    while lab.pods("c2", "app=agent", "kube-system") and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    time.sleep(0.5)
    assert not _pgrep("sleep 3331")  # the whole container went, not only its session


def _pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return out.stdout.split()


def test_cli_names_what_exists(lab: Lab, echo: dict) -> None:
    env = lab.env()
    cli = [sys.executable, "-m", "wgslice", "lab"]
    bad = subprocess.run([*cli, "exec", "c9/default/x", "--", "true"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "clusters: c1, c2, hub" in bad.stderr
    bad = subprocess.run([*cli, "exec", "c1/default/nope", "--", "true"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "default/client" in bad.stderr
    ok = subprocess.run([*cli, "exec", "c1/default/client", "--", "ip", "-br", "addr"],
                        env=env, capture_output=True, text=True)
    assert echo["c1"]["client_ip"] in ok.stdout
    status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True)
    assert "nodes 2/2 Ready" in status.stdout
    path = subprocess.run([*cli, "kubeconfig"], env=env, capture_output=True, text=True)
    assert path.stdout.strip() == str(lab.kubeconfig)
    again = subprocess.run([*cli, "up", "--clusters", "2", "--nodes", "3"], env=env,
                           capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_up_restarts_a_dead_supervisor_and_pods_are_adopted(lab: Lab, echo: dict) -> None:
    from wgslice.lab.state import read_pid

    before = lab.pods("c1", "app=echo")[0]
    pid = read_pid(lab.dirs.supervisor_pidfile("c1"))
    assert pid
    os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    lab.up(members=2, nodes=2)  # restarts c1's supervisor only
    assert read_pid(lab.dirs.supervisor_pidfile("c1")) != pid
    # The stored status still says Ready (nothing changed it while the kubelet was away):
    # wait for the new kubelet's report of the restarted container.
    deadline = time.monotonic() + 20
    after = lab.wait_ready("c1", "app=echo")[0]
    while after["status"]["containerStatuses"][0]["restartCount"] < 1 and \
            time.monotonic() < deadline:
        time.sleep(0.2)
        after = lab.wait_ready("c1", "app=echo")[0]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["podIP"] == before["status"]["podIP"]
    assert after["status"]["containerStatuses"][0]["restartCount"] >= 1
    deadline = time.monotonic() + 10
    tcp = None
    while time.monotonic() < deadline:
        tcp = _probe(lab, "c1", "client", "tcp", echo["c1"]["server_ip"], "8080")
        if tcp.returncode == 0:
            break
        time.sleep(0.2)
    assert tcp is not None and tcp.stdout.startswith("c1 ")


def test_missing_tools_are_named() -> None:
    env = dict(os.environ, PATH="/nonexistent", WGSLICE_LAB_DIR="/nonexistent/lab")
    out = subprocess.run([sys.executable, "-m", "wgslice", "lab", "up"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "missing ip" in out.stderr and "wireguard-go" in out.stderr
    assert "apt-get install --no-install-recommends wireguard-tools wireguard-go" in out.stderr


def test_zz_down_leaves_nothing(lab: Lab) -> None:
    root = lab.dirs.root
    lab.down()
    assert nx.list_netns(PREFIX) == []
    assert nx.root_links(PREFIX) == []
    assert not root.exists()
    leftover = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True)
    assert leftover.stdout == ""
    assert not os.path.exists("/etc/wgslice-test")  # mount points the lab had to create
    assert not os.path.exists("/run/wgslice-labtest")


def test_down_after_a_crash_halfway(tmp_path: Path) -> None:
    """State written, a namespace and a process made, then `up` "crashed": down cleans up."""
    handle = Lab(state_dir=tmp_path / "state", prefix="wgstest2-", port_base=19543)
    handle.dirs.write_lab({"members": 1, "nodes": 1, "prefix": "wgstest2-",
                           "port_base": 19543, "phase": "creating"})
    handle.dirs.record("netns", "wgstest2-c1-cp")
    subprocess.run(["ip", "netns", "add", "wgstest2-c1-cp"], check=True)
    subprocess.run(["ip", "netns", "add", "wgstest2-stray"], check=True)  # not journaled
    sleeper = subprocess.Popen(["ip", "netns", "exec", "wgstest2-stray", "sleep", "60"])
    try:
        time.sleep(0.2)
        counts = handle.down()
        assert counts["netns"] == 2 and counts["processes"] >= 1
        assert sleeper.wait(timeout=5) != 0
        assert nx.list_netns("wgstest2-") == []
        assert not (tmp_path / "state").exists()
    finally:
        sleeper.kill()
        for name in nx.list_netns("wgstest2-"):
            nx.remove(name)
