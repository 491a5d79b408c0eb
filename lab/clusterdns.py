"""The lab clusters' DNS add-on: CoreDNS, as kubeadm would install it, laid out as NodeLocal
DNSCache is (a hostNetwork DaemonSet answering on a link-local address of every node).

Why this layout: the lab has no kube-proxy, so a `kube-dns` ClusterIP would route nowhere;
a server on every node's `169.254.20.10` (lab/layout.py CLUSTER_DNS_IP, on the dummy
interface `nodelocaldns`) is reached by every pod through its default route, and it sees
each client pod's own address, which the clusterset.local zone needs to answer only the
pods of a slice (docs/mcs.md). Pods get it through the /etc/resolv.conf the lab kubelet
writes (`nameserver 169.254.20.10`, `search <ns>.svc.cluster.local ...`, `ndots:5`).

The program is the real CoreDNS, built by scripts/build-upstream.sh from its Go module
(the lab kubelet runs images of `coredns/coredns` from that binary). The Corefile imports
`/etc/coredns-custom/*.server` from the ConfigMap `coredns-custom`: the convention AKS
uses for additions to the cluster DNS (AKS mounts it at /etc/coredns/custom; the lab
binds each volume on its own path, not nested). That is where the wgslice member agent
writes the clusterset.local stub zone.
"""

from __future__ import annotations

from typing import Any

from wgslice.lab import layout as topo

NAMESPACE = "kube-system"
IMAGE = "registry.k8s.io/coredns/coredns:v1.15.0"
CUSTOM_CONFIGMAP = "coredns-custom"
LABELS = {"k8s-app": "kube-dns"}

COREFILE = f"""\
.:53 {{
    errors
    kubernetes {topo.CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    loadbalance
    reload 2s 1s
}}
import /etc/coredns-custom/*.server
"""


def manifests() -> list[dict[str, Any]]:
    meta = {"namespace": NAMESPACE, "labels": dict(LABELS)}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns", "labels": dict(LABELS)},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns", "labels": dict(LABELS)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": NAMESPACE}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", **meta},
         "data": {"Corefile": COREFILE}},
        # empty, as AKS ships it: additions (the clusterset.local zone) go here
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": CUSTOM_CONFIGMAP, **meta}, "data": {}},
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "coredns", **meta},
            "spec": {
                "selector": {"matchLabels": dict(LABELS)},
                "template": {
                    "metadata": {"labels": dict(LABELS)},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "hostNetwork": True,
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-node-critical",
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [
                            {
                                "name": "coredns",
                                "image": IMAGE,
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [{"name": "dns", "containerPort": 53,
                                           "protocol": "UDP"}],
                                "volumeMounts": [
                                    {"name": "config-volume", "mountPath": "/etc/coredns",
                                     "readOnly": True},
                                    {"name": "custom-config-volume",
                                     "mountPath": "/etc/coredns-custom", "readOnly": True},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config-volume", "configMap": {"name": "coredns"}},
                            {"name": "custom-config-volume",
                             "configMap": {"name": CUSTOM_CONFIGMAP, "optional": True}},
                        ],
                    },
                },
            },
        },
    ]
