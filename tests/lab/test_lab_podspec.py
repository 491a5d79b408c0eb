"""Pod spec -> argv, env, mounts (pure rules of the lab kubelet)."""

from __future__ import annotations

import base64

import pytest

from wgslice.lab.podspec import (
    SA_MOUNT,
    Mount,
    PodSpecError,
    container_argv,
    container_env,
    field_ref,
    host_path,
    image_repository,
    is_project_image,
    mount_script,
    referenced_objects,
    secret_data,
)

PY = "/venv/bin/python"


@pytest.mark.parametrize(("image", "project"), [
    ("wgslice/wgslice:0.1.0", True),
    ("wgslice", True),
    ("ghcr.io/acme/wgslice@sha256:abcd", True),
    ("registry:5000/x/wgslice:1", True),
    ("registry:5000/wgslice-agent:1", False),
    ("nginx:1.27", False),
    ("busybox", False),
])
def test_project_images(image: str, project: bool) -> None:
    assert is_project_image(image) is project


def test_image_repository_strips_tag_and_digest() -> None:
    repo = "registry:5000/org/wgslice"
    assert image_repository(repo + ":1.0@sha256:aa") == repo
    assert image_repository("registry:5000/org/wgslice") == "registry:5000/org/wgslice"


@pytest.mark.parametrize(("container", "argv"), [
    ({"args": ["agent", "--v"]}, [PY, "-m", "wgslice", "agent", "--v"]),
    ({"command": ["wgslice", "gateway"], "args": ["run"]}, [PY, "-m", "wgslice", "gateway", "run"]),
    ({"command": ["/usr/local/bin/wgslice"]}, [PY, "-m", "wgslice"]),
    ({"command": ["python3", "-m", "kopf"], "args": ["run"]}, [PY, "-m", "kopf", "run"]),
    ({"command": ["sh", "-c", "echo hi"]}, ["sh", "-c", "echo hi"]),
])
def test_container_argv(container: dict, argv: list[str]) -> None:
    assert container_argv(container, PY) == argv


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
       "spec": {"nodeName": "c1-node-1"}}


def test_env_resolution_order_and_refs() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-$$(A)"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.labels['app']"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "s", "key": "no",
                                                           "optional": True}}},
            {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
        ],
    }
    env = container_env(POD, container, pod_ip="10.244.0.2", host_ip="172.20.1.11",
                        secrets={"s": {"pw": b"hunter2"}}, configmaps={"cm": {"mode": b"lab"}})
    assert env == {"CM_mode": "lab", "A": "1", "B": "1-$(A)", "NAME": "p", "NODE": "c1-node-1",
                   "IP": "10.244.0.2", "HOST": "172.20.1.11", "APP": "x", "PW": "hunter2",
                   "M": "lab"}


def test_missing_secret_is_a_config_error() -> None:
    container = {"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s",
                                                                         "key": "pw"}}}]}
    with pytest.raises(PodSpecError) as err:
        container_env(POD, container, pod_ip="", host_ip="", secrets={}, configmaps={})
    assert err.value.reason == "CreateContainerConfigError"


def test_field_ref_unknown() -> None:
    with pytest.raises(PodSpecError):
        field_ref(POD, "spec.bogus", "", "")


def test_referenced_objects() -> None:
    pod = {"spec": {
        "containers": [{"env": [{"name": "a", "valueFrom": {"secretKeyRef": {"name": "s1",
                                                                           "key": "k"}}}],
                        "envFrom": [{"configMapRef": {"name": "c1"}}]}],
        "volumes": [{"name": "v", "secret": {"secretName": "s2"}},
                    {"name": "w", "configMap": {"name": "c2"}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "s3"}}]}}]}}
    assert referenced_objects(pod) == ({"s1", "s2", "s3"}, {"c1", "c2"})


def test_secret_data_decodes() -> None:
    secret = {"data": {"a": base64.b64encode(b"\x00bin").decode()}, "stringData": {"b": "t"}}
    assert secret_data(secret) == {"a": b"\x00bin", "b": b"t"}


def test_mount_script() -> None:
    script = mount_script([Mount("/state/pod/volumes/keys", "/etc/keys", read_only=True),
                           Mount("/state/pod/volumes/x", "/run/secrets/extra")], "/state/sa")
    lines = script.splitlines()
    assert lines[0] == "set -e" and lines[-1] == 'exec "$@"'
    assert "mount -t tmpfs -o mode=0755,size=8m wgslice-lab /run/wireguard" in lines
    assert f"mount --bind /state/sa {SA_MOUNT}" in lines
    assert "mount -o remount,bind,ro /etc/keys" in lines
    assert "mkdir -p /run/secrets/extra" in lines
    assert "mkdir -p /etc/keys" not in lines  # outside the private tmpfs: made by the kubelet


@pytest.mark.parametrize(("path", "expect", "private"), [
    ("/run/wgslice", "/lab/nodes/n1/fs/run/wgslice", True),
    ("/var/lib/x/", "/lab/nodes/n1/fs/var/lib/x", True),
    ("/var/run/netns", "/var/run/netns", False),
    ("/run/netns/", "/run/netns", False),
    ("/dev/net/tun", "/dev/net/tun", False),
    ("/lib/modules", "/lib/modules", False),
    ("/devices", "/lab/nodes/n1/fs/devices", True),
])
def test_host_path_is_per_node_except_machine_wide(path: str, expect: str,
                                                    private: bool) -> None:
    assert host_path(path, "/lab/nodes/n1/fs") == (expect, private)


def test_self_bind_of_machine_wide_path_is_skipped() -> None:
    script = mount_script([Mount("/var/run/netns", "/var/run/netns")], None)
    assert "/var/run/netns" not in script


def test_resolv_conf_as_the_kubelet_writes_it() -> None:
    from wgslice.lab.podspec import resolv_conf

    pod = {"metadata": {"namespace": "shop"}, "spec": {}}
    assert resolv_conf(pod, "169.254.20.10") == (
        "nameserver 169.254.20.10\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n")
    assert resolv_conf({"spec": {"hostNetwork": True}}, "169.254.20.10") is None
    assert resolv_conf({"spec": {"dnsPolicy": "Default"}}, "169.254.20.10") is None
    custom = {"metadata": {"namespace": "a"},
              "spec": {"dnsPolicy": "None", "dnsConfig": {
                  "nameservers": ["10.0.0.1"], "searches": ["x.local"],
                  "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}
    assert resolv_conf(custom, "169.254.20.10") == (
        "nameserver 10.0.0.1\nsearch x.local\noptions ndots:2 edns0\n")


def test_upstream_images_run_the_built_program() -> None:
    from wgslice.lab.podspec import upstream_argv, upstream_program

    assert upstream_program("registry.k8s.io/coredns/coredns:v1.15.0") == "coredns"
    assert upstream_program("coredns/coredns@sha256:abc") == "coredns"
    assert upstream_program("busybox:1.36") is None
    c = {"args": ["-conf", "/etc/coredns/Corefile"]}
    assert upstream_argv(c, "/cache/bin/coredns") == ["/cache/bin/coredns", "-conf",
                                                      "/etc/coredns/Corefile"]
    assert upstream_argv({"command": ["/coredns"], "args": ["-dns.port", "53"]},
                         "/cache/bin/coredns") == ["/cache/bin/coredns", "-dns.port", "53"]


def test_cluster_dns_manifests_are_valid() -> None:
    import kubernetes_validate

    from wgslice.lab import clusterdns

    for obj in clusterdns.manifests():
        kubernetes_validate.validate(obj, "1.32", strict=True)
    ds = next(o for o in clusterdns.manifests() if o["kind"] == "DaemonSet")
    assert ds["spec"]["template"]["spec"]["hostNetwork"] is True
    assert "import /etc/coredns-custom/*.server" in clusterdns.COREFILE
