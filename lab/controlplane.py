"""The real Kubernetes control plane of one lab cluster: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, built from their Go modules by
``scripts/build-upstream.sh``.

Each cluster's supervisor runs them as child processes inside the cluster's control-plane
network namespace, so each cluster has its own loopback: etcd listens on ``127.0.0.1:2379``
and the controller manager and scheduler reach the API at ``127.0.0.1:6443`` in every cluster
without clashing. The API server listens on every address of that namespace (the cluster
network's ``.1`` and, for the hub, its WAN address); the supervisor relays the user's
``127.0.0.1:<port>`` of the root namespace to it.

The flags are those of a kubeadm control plane (Node and RBAC authorizers, NodeRestriction
on top of the default admission plugins, PodSecurity among them; service-account tokens
signed with ``sa.key``; every component with its own client certificate and, in the
controller manager, one service account per controller), plus what a single-machine lab
wants: no leader election (one replica of each), a static admin token file for the lab's
own stdlib tooling (kubectl uses it too), and smaller caches. `argv_*` are pure functions
of the plan and paths, unit-tested without root.
"""

from __future__ import annotations

import os
import shutil
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from wgslice.lab import layout as topo
from wgslice.lab.pki import ClusterPki

#: Where scripts/build-upstream.sh links the binaries it built.
UPSTREAM_BIN = Path(os.environ.get("WGSLICE_UPSTREAM", "/var/cache/wgslice/upstream")) / "bin"
PROGRAMS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
#: What a kubeadm cluster adds to kube-apiserver's default admission plugins.
ADMISSION = "NodeRestriction"


def binary(name: str) -> str:
    """The built upstream program, else one on PATH; None found is a UserError upstream."""
    built = UPSTREAM_BIN / name
    if built.exists():
        return str(built)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"{name} not found in {UPSTREAM_BIN} or on PATH; build it with "
        "`bash scripts/build-upstream.sh` (or `bash scripts/setup.sh`)")


def healthy(url: str, ctx: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    """Whether a health endpoint (etcd's /health, the API server's /readyz) answers 200."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def missing_programs() -> list[str]:
    out = []
    for name in PROGRAMS:
        try:
            binary(name)
        except FileNotFoundError:
            out.append(name)
    return out


@dataclass(frozen=True)
class Paths:
    """Files of one cluster's control plane under ``clusters/<name>/``."""

    root: Path

    @property
    def pki(self) -> ClusterPki:
        return ClusterPki(self.root / "pki")

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def token_csv(self) -> Path:
        return self.root / "pki" / "tokens.csv"

    def kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def log(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"


@dataclass(frozen=True)
class Endpoints:
    """Where one control plane listens. In a lab cluster each control plane has its own
    network namespace, so the defaults never clash; a standalone control plane on the
    host's loopback (tests) picks free ports."""

    advertise: str = "127.0.0.1"
    api_port: int = topo.API_PORT
    etcd_port: int = 2379
    etcd_peer_port: int = 2380
    etcd_metrics_port: int = 2381
    kcm_port: int = 10257
    scheduler_port: int = 10259
    service_cidr: str = topo.SERVICE_CIDR
    pod_cidr: str = topo.POD_CIDR

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"


def cluster_endpoints(cluster: topo.ClusterPlan) -> Endpoints:
    return Endpoints(advertise=cluster.api_ip, api_port=cluster.api_port,
                     service_cidr=cluster.service_cidr, pod_cidr=cluster.pod_cidr)


def argv_etcd(paths: Paths, name: str, ep: Endpoints) -> list[str]:
    peer = f"http://127.0.0.1:{ep.etcd_peer_port}"
    return [
        binary("etcd"), f"--name={name}", f"--data-dir={paths.etcd_data}",
        f"--listen-client-urls={ep.etcd_url}", f"--advertise-client-urls={ep.etcd_url}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={name}={peer}",
        f"--listen-metrics-urls=http://127.0.0.1:{ep.etcd_metrics_port}",
        # The state dir is a tmpfs: fsync buys nothing, and a smaller snapshot interval and
        # backend quota keep an idle etcd small.
        "--unsafe-no-fsync", "--snapshot-count=5000", "--quota-backend-bytes=536870912",
        "--log-level=warn",
    ]


def argv_apiserver(paths: Paths, ep: Endpoints) -> list[str]:
    pki = paths.pki
    return [
        binary("kube-apiserver"),
        f"--etcd-servers={ep.etcd_url}",
        f"--advertise-address={ep.advertise}", "--bind-address=0.0.0.0",
        f"--secure-port={ep.api_port}",
        f"--tls-cert-file={pki.crt('apiserver')}", f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_crt}",
        f"--token-auth-file={paths.token_csv}",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={ADMISSION}",
        "--allow-privileged=true",
        "--enable-bootstrap-token-auth=true",
        f"--service-cluster-ip-range={ep.service_cidr}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--kubelet-client-certificate={pki.crt('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={pki.ca_crt}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        # The aggregation layer's front proxy, as kubeadm sets it up (the lab signs the
        # proxy's client certificate with the cluster CA instead of a second CA).
        f"--requestheader-client-ca-file={pki.ca_crt}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.crt('front-proxy-client')}",
        f"--proxy-client-key-file={pki.key('front-proxy-client')}",
        "--profiling=false",
        "--event-ttl=1h",
        # Small clusters: a smaller watch cache and fewer in-flight requests.
        "--default-watch-cache-size=50",
        "--max-requests-inflight=200", "--max-mutating-requests-inflight=100",
        "--v=1",
        # The `kubernetes` Service's endpoint is the advertise address, which may not be a
        # loopback address: a standalone control plane (tests) publishes none.
        *(["--endpoint-reconciler-type=none"] if ep.advertise.startswith("127.") else []),
    ]


def argv_controller_manager(paths: Paths, ep: Endpoints) -> list[str]:
    pki, kc = paths.pki, paths.kubeconfig("controller-manager")
    return [
        binary("kube-controller-manager"),
        f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1", f"--secure-port={ep.kcm_port}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        "--controllers=*,bootstrapsigner,tokencleaner",
        f"--cluster-signing-cert-file={pki.ca_crt}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--root-ca-file={pki.ca_crt}",
        f"--service-account-private-key-file={pki.sa_key}",
        "--allocate-node-cidrs=true", f"--cluster-cidr={ep.pod_cidr}",
        "--node-cidr-mask-size=24", f"--service-cluster-ip-range={ep.service_cidr}",
        "--profiling=false", "--v=1",
    ]


def argv_scheduler(paths: Paths, ep: Endpoints) -> list[str]:
    kc = paths.kubeconfig("scheduler")
    return [
        binary("kube-scheduler"),
        f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1", f"--secure-port={ep.scheduler_port}",
        "--leader-elect=false", "--profiling=false", "--v=1",
    ]


def component_kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig with client-certificate credentials (files, as kubeadm writes them)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "default",
        "clusters": [{"name": "lab", "cluster": {"server": server,
                                                "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert),
                                          "client-key": str(key)}}],
        "contexts": [{"name": "default", "context": {"cluster": "lab", "user": user}}],
    }, sort_keys=False)


def write_component_kubeconfigs(paths: Paths, ep: Endpoints) -> None:
    server = ep.api_url
    pki = paths.pki
    for comp, user in (("controller-manager", "system:kube-controller-manager"),
                       ("scheduler", "system:kube-scheduler")):
        crt, key = pki.pair(comp)
        target = paths.kubeconfig(comp)
        target.write_text(component_kubeconfig(server, pki.ca_crt, crt, key, user))
        target.chmod(0o600)


def write_token_file(paths: Paths, admin_token: str) -> None:
    """The static token of the lab's admin (group system:masters), kube-apiserver's CSV."""
    paths.token_csv.write_text(f'{admin_token},lab-admin,lab-admin,"system:masters"\n')
    paths.token_csv.chmod(0o600)
