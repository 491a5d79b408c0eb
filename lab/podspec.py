"""Pure translation of a Pod spec into what the lab kubelet runs: argv, env, mounts.

Kept free of I/O so the rules -- which images are the project's own, how `command`/`args`
map onto the venv's entry points, how `fieldRef`/`secretKeyRef`/`configMapKeyRef` resolve,
which shell script sets up a container's private mounts -- are unit-tested without root.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
WG_RUN = "/var/run/wireguard"
#: Host directories that containers get a private tmpfs on (created by `lab up` if missing).
PRIVATE_DIRS = ("/run/secrets", "/run/wireguard")


class PodSpecError(ValueError):
    """Something in the pod the kubelet cannot run (reported as the container's reason)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def image_repository(image: str) -> str:
    """``registry:5000/org/wgslice:1.0@sha256:..`` -> ``registry:5000/org/wgslice``."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo[: repo.rfind(":")]
    return repo


def is_project_image(image: str) -> bool:
    """Images whose repository's last path element is ``wgslice`` run the project's code."""
    return image_repository(image).rsplit("/", 1)[-1] == "wgslice"


#: Images of upstream programs the lab runs for real, from the binaries
#: scripts/build-upstream.sh built (repository's last element -> program name). Their
#: `command` (or the image's entry point, the program itself) and `args` run as given.
UPSTREAM_IMAGES = {"coredns": "coredns"}


def upstream_program(image: str) -> str | None:
    """The upstream program an image stands for (``registry.k8s.io/coredns/coredns:v1.15.0``
    -> ``coredns``), or None for workload images (which idle)."""
    return UPSTREAM_IMAGES.get(image_repository(image).rsplit("/", 1)[-1])


def upstream_argv(container: Obj, binary: str, env: Mapping[str, str] | None = None
                  ) -> list[str]:
    """argv of an upstream-image container: its entry point is the program itself."""
    env = env or {}
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    if command and os.path.basename(command[0]) != os.path.basename(binary):
        return [*command, *args]
    return [binary, *command[1:], *args]


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command and args: a defined variable is replaced,
    an undefined reference is kept as written, and `$$` escapes a dollar."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def container_argv(container: Obj, python: str, env: Mapping[str, str] | None = None
                   ) -> list[str]:
    """The argv of a project-image container, mapped onto this venv's interpreter.

    The image's entry point is ``wgslice``; ``command: [wgslice, ...]`` and
    ``command: [python3, -m, ...]`` keep working because both map to ``python -m``.
    `$(VAR)` references are expanded from the container's `env`, as the kubelet does.
    """
    env = env or {}
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    if not command:
        return [python, "-m", "wgslice", *args]
    head = os.path.basename(str(command[0]))
    rest = [str(c) for c in command[1:]]
    if head == "wgslice":
        return [python, "-m", "wgslice", *rest, *args]
    if head.startswith("python"):
        return [python, *rest, *args]
    return [str(command[0]), *rest, *args]


def _meta_path(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    for kind in ("labels", "annotations"):
        prefix = f"metadata.{kind}['"
        if path.startswith(prefix) and path.endswith("']"):
            return str((meta.get(kind) or {}).get(path[len(prefix):-2], ""))
    return ""


def field_ref(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    """A downward-API field (the ones Kubernetes supports for env)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    if path.startswith("metadata."):
        return _meta_path(pod, path)
    raise PodSpecError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")


def secret_data(secret: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def configmap_data(cm: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return out


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of Secrets and ConfigMaps the pod's env, envFrom and volumes refer to."""
    secrets: set[str] = set()
    cms: set[str] = set()
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            vf = e.get("valueFrom") or {}
            if "secretKeyRef" in vf:
                secrets.add(vf["secretKeyRef"]["name"])
            if "configMapKeyRef" in vf:
                cms.add(vf["configMapKeyRef"]["name"])
        for ef in c.get("envFrom") or []:
            if "secretRef" in ef:
                secrets.add(ef["secretRef"]["name"])
            if "configMapRef" in ef:
                cms.add(ef["configMapRef"]["name"])
    for v in spec.get("volumes") or []:
        if "secret" in v:
            secrets.add(v["secret"]["secretName"])
        if "configMap" in v:
            cms.add(v["configMap"]["name"])
        for src in (v.get("projected") or {}).get("sources") or []:
            if "secret" in src:
                secrets.add(src["secret"]["name"])
            if "configMap" in src:
                cms.add(src["configMap"]["name"])
    return secrets, cms


def _lookup(store: dict[str, dict[str, bytes]], kind: str, ref: Obj) -> str | None:
    data = store.get(ref["name"])
    if data is None or ref.get("key") not in data:
        if ref.get("optional"):
            return None
        raise PodSpecError("CreateContainerConfigError",
                           f"{kind} {ref['name']!r} or its key {ref.get('key')!r} not found")
    return data[ref["key"]].decode(errors="replace")


def container_env(pod: Obj, container: Obj, *, pod_ip: str, host_ip: str,
                  secrets: dict[str, dict[str, bytes]],
                  configmaps: dict[str, dict[str, bytes]]) -> dict[str, str]:
    """The container's environment from env and envFrom, in Kubernetes' precedence order."""
    env: dict[str, str] = {}
    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        for kind, store, key in (("Secret", secrets, "secretRef"),
                                 ("ConfigMap", configmaps, "configMapRef")):
            if key in ef:
                data = store.get(ef[key]["name"])
                if data is None and not ef[key].get("optional"):
                    raise PodSpecError("CreateContainerConfigError",
                                       f"{kind} {ef[key]['name']!r} not found")
                for k, v in (data or {}).items():
                    env[prefix + k] = v.decode(errors="replace")
    for e in container.get("env") or []:
        name = e["name"]
        if "value" in e or "valueFrom" not in e:
            env[name] = _expand(str(e.get("value", "")), env)
            continue
        vf = e["valueFrom"]
        value: str | None
        if "fieldRef" in vf:
            value = field_ref(pod, vf["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in vf:
            value = _lookup(secrets, "Secret", vf["secretKeyRef"])
        elif "configMapKeyRef" in vf:
            value = _lookup(configmaps, "ConfigMap", vf["configMapKeyRef"])
        elif "resourceFieldRef" in vf:
            value = "0"
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion from earlier variables (``$$`` escapes)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and (end := value.find(")", i)) > 0:
            name = value[i + 2:end]
            out.append(env.get(name, value[i:end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


#: hostPath prefixes that are the machine's own (shared by all emulated nodes, as the kernel
#: objects behind them are); every other hostPath is per node.
HOST_SHARED = ("/run/netns", "/var/run/netns", "/dev", "/proc", "/sys", "/lib/modules")


def host_path(path: str, node_fs: str) -> tuple[str, bool]:
    """Where a node's hostPath lives on this machine, and whether it is per node.

    Emulated nodes share one filesystem, so a hostPath such as /run/wgslice (a node agent's
    state) would be shared by every node of every cluster; it is mapped under the node's
    own directory instead. Network-namespace handles, devices, proc, sys and kernel modules
    stay the machine's, since those are what a node agent must see.
    """
    norm = os.path.normpath(path)
    if any(norm == p or norm.startswith(p + "/") for p in HOST_SHARED):
        return norm, False
    return os.path.join(node_fs, norm.lstrip("/")), True


@dataclass
class Mount:
    """One bind mount of a prepared host directory/file onto the container's path."""

    source: str
    target: str
    read_only: bool = False
    sub_path: str = ""


@dataclass
class ContainerPlan:
    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)
    project: bool = True
    readiness: Obj | None = None  # the container's readinessProbe, as in the spec
    liveness: Obj | None = None
    ports: dict[str, int] = field(default_factory=dict)  # named container ports


def mount_script(mounts: list[Mount], sa_dir: str | None) -> str:
    """Shell run inside the container's own mount namespace (``ip netns exec`` made one).

    Private tmpfs on /run/secrets and /run/wireguard (so each wireguard-go has its own
    control-socket directory, as in a real container), the service-account files at the
    real path, then every volume mount. Mount points outside those tmpfs must exist.
    """
    lines = ["set -e"]
    for d in PRIVATE_DIRS:
        lines.append(f"mount -t tmpfs -o mode=0755,size=8m wgslice-lab {shlex.quote(d)}")
    if sa_dir:
        lines.append(f"mkdir -p {SA_MOUNT}")
        lines.append(f"mount --bind {shlex.quote(sa_dir)} {SA_MOUNT}")
    for m in mounts:
        src = os.path.join(m.source, m.sub_path) if m.sub_path else m.source
        if os.path.normpath(src) == os.path.normpath(m.target) and not m.read_only:
            continue  # a machine-wide hostPath at its own path: already there
        tgt = shlex.quote(m.target)
        if any(m.target == d or m.target.startswith(d + "/") or
               m.target.startswith("/var" + d + "/") for d in PRIVATE_DIRS):
            if os.path.isdir(src) or not m.sub_path:
                lines.append(f"mkdir -p {tgt}")
            else:
                lines.append(f"mkdir -p $(dirname {tgt}) && touch {tgt}")
        lines.append(f"mount --bind {shlex.quote(src)} {tgt}")
        if m.read_only:
            lines.append(f"mount -o remount,bind,ro {tgt}")
    lines.append('exec "$@"')
    return "\n".join(lines)


def resolv_conf(pod: Obj, cluster_dns: str, domain: str = "cluster.local") -> str | None:
    """The pod's /etc/resolv.conf as a kubelet writes it for `dnsPolicy` (ClusterFirst by
    default; `None` uses the node's: no file), plus `dnsConfig`; None for hostNetwork pods
    (they share the node's). Search path and ndots:5 as the kubelet sets them."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host = bool(spec.get("hostNetwork"))
    if policy == "Default" or (host and policy != "ClusterFirstWithHostNet"):
        return None
    if host:
        return None  # the node's namespace is shared by every hostNetwork pod: leave it
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    cfg = spec.get("dnsConfig") or {}
    servers: list[str] = [] if policy == "None" else [cluster_dns]
    search: list[str] = [] if policy == "None" else [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
    options: dict[str, str | None] = {} if policy == "None" else {"ndots": "5"}
    servers += [str(s) for s in cfg.get("nameservers") or []]
    search += [str(s) for s in cfg.get("searches") or []]
    for o in cfg.get("options") or []:
        options[str(o.get("name"))] = None if o.get("value") is None else str(o["value"])
    lines = [f"nameserver {s}" for s in servers[:3]]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(k if v is None else f"{k}:{v}"
                                            for k, v in options.items()))
    return "\n".join(lines) + "\n"
