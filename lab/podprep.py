"""Everything a pod needs before its containers start: token, Secrets, ConfigMaps, env.

Split from the kubelet so the kubelet module stays about lifecycles. Faithful to the real
kubelet: a ServiceAccount token from the TokenRequest API (bound to the pod), the cluster
CA as ``ca.crt``, Secret/ConfigMap/projected/emptyDir volumes materialized in the pod's
directory under the lab state dir, hostPath volumes in the node's own directory (except
the machine-wide paths in `podspec.HOST_SHARED`), and the ``KUBERNETES_SERVICE_*`` env.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wgslice.lab import controlplane
from wgslice.lab import layout as topo
from wgslice.lab import runtime as rt
from wgslice.lab.kubeclient import ApiError, Client, path_for
from wgslice.lab.podspec import (
    PRIVATE_DIRS,
    ContainerPlan,
    Mount,
    PodSpecError,
    configmap_data,
    container_argv,
    container_env,
    host_path,
    is_project_image,
    referenced_objects,
    secret_data,
    upstream_argv,
    upstream_program,
)
from wgslice.lab.state import LabDirs

Obj = dict[str, Any]


def pod_meta(run: Any) -> Obj:
    """What a downward API projection can read of a running pod."""
    meta = (run.pod or {}).get("metadata") or {}
    return {"name": run.name, "namespace": run.namespace, "uid": run.uid,
            "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}


def downward_files(meta: Obj, source: Obj) -> dict[str, bytes]:
    """Files of a downwardAPI volume or projection (``metadata.*`` fields)."""
    out: dict[str, bytes] = {}
    for item in source.get("items") or []:
        field = ((item.get("fieldRef") or {}).get("fieldPath") or "")
        if field in ("metadata.name", "metadata.namespace", "metadata.uid"):
            out[item["path"]] = str(meta[field.split(".", 1)[1]]).encode()
        elif field in ("metadata.labels", "metadata.annotations"):
            kv = meta[field.split(".", 1)[1]]
            out[item["path"]] = "".join(f'{k}="{v}"\n' for k, v in sorted(kv.items())).encode()
    return out


class PodPreparer:
    def __init__(self, client: Client, cluster: topo.ClusterPlan, dirs: LabDirs,
                 ca_file: str | None, python: str) -> None:
        self.client = client
        self.cluster = cluster
        self.dirs = dirs
        self.ca_file = ca_file
        self.python = python

    async def _referenced(self, run: Any, pod: Obj) -> tuple[dict[str, dict[str, bytes]],
                                                              dict[str, dict[str, bytes]]]:
        ns = run.namespace
        secret_names, cm_names = referenced_objects(pod)
        secrets: dict[str, dict[str, bytes]] = {}
        cms: dict[str, dict[str, bytes]] = {}
        try:
            for name in secret_names:
                obj = await self.client.get(path_for("v1", "secrets", ns, name))
                if obj is not None:
                    secrets[name] = secret_data(obj)
            for name in cm_names:
                obj = await self.client.get(path_for("v1", "configmaps", ns, name))
                if obj is not None:
                    cms[name] = configmap_data(obj)
        except ApiError as exc:
            # e.g. 403 from the Node authorizer until its graph links the pod to the object:
            # a real kubelet reports the same and retries.
            raise PodSpecError("CreateContainerConfigError", str(exc)) from exc
        return secrets, cms

    async def refresh_volumes(self, run: Any, pod: Obj) -> None:
        """Rewrite Secret and ConfigMap volumes whose source changed, as the kubelet does
        (a real kubelet within about a minute; the lab within a couple of seconds)."""
        secrets, cms = await self._referenced(run, pod)
        self._volumes(run, pod.get("spec") or {}, secrets, cms)

    async def prepare(self, run: Any, pod: Obj) -> tuple[list[ContainerPlan],
                                                          list[ContainerPlan]]:
        """Fetch what the pod refers to, write its volumes, and plan every container."""
        spec = pod.get("spec") or {}
        secrets, cms = await self._referenced(run, pod)
        sa_dir = None
        if spec.get("automountServiceAccountToken", True):
            sa_dir = await self._service_account(run, spec)
        volumes = self._volumes(run, spec, secrets, cms)
        base_env = self._base_env(run, sa_dir)

        def plan(c: Obj) -> ContainerPlan:
            env = container_env(pod, c, pod_ip=run.ip, host_ip=run.node.ip, secrets=secrets,
                                configmaps=cms)
            mounts = []
            for vm in c.get("volumeMounts") or []:
                src = volumes.get(vm["name"])
                if src is None:
                    raise PodSpecError("CreateContainerConfigError",
                                       f"volume {vm['name']!r} is not defined or not supported")
                self._ensure_mount_point(vm["mountPath"])
                mounts.append(Mount(src, vm["mountPath"], bool(vm.get("readOnly")),
                                    vm.get("subPath", "")))
            project = is_project_image(c.get("image", ""))
            argv = container_argv(c, self.python, env)
            program = upstream_program(c.get("image", ""))
            if program is not None:  # an upstream program the lab built: run it for real
                try:
                    binary = controlplane.binary(program)
                except FileNotFoundError as exc:
                    raise PodSpecError("CreateContainerError", str(exc)) from exc
                argv = upstream_argv(c, binary, env)
                project = True
            ports = {p["name"]: int(p["containerPort"]) for p in c.get("ports") or []
                     if p.get("name")}
            return ContainerPlan(name=c["name"], argv=argv,
                                 env={**base_env, **env}, mounts=mounts, project=project,
                                 readiness=c.get("readinessProbe"),
                                 liveness=c.get("livenessProbe"), ports=ports)

        plans = [plan(c) for c in spec.get("containers") or []]
        inits = [plan(c) for c in spec.get("initContainers") or []]
        return plans, inits

    def _base_env(self, run: Any, sa_dir: str | None) -> dict[str, str]:
        host, port = self.cluster.api_ip, str(self.cluster.api_port)
        env = {
            "HOSTNAME": run.node.name if run.host_network else run.name,
            "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
            "WGSLICE_LAB_CLUSTER": self.cluster.name,
        }
        if sa_dir:
            env["WGSLICE_SA_DIR"] = sa_dir
        return env

    def _ensure_mount_point(self, target: str) -> None:
        path = Path(target)
        real = Path("/run" + target[len("/var/run"):]) if target.startswith("/var/run/") \
            else path
        if any(str(real) == d or str(real).startswith(d + "/") for d in PRIVATE_DIRS):
            return
        if path.exists():
            return
        top = path
        while not top.parent.exists():
            top = top.parent
        self.dirs.record("dir", str(top))
        path.mkdir(parents=True, exist_ok=True)

    async def _service_account(self, run: Any, spec: Obj) -> str:
        sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [], "expirationSeconds": 3607,
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                            "name": run.name, "uid": run.uid}}}
        try:
            resp = await self.client.create(
                path_for("v1", "serviceaccounts", run.namespace, sa, "token"), body)
        except ApiError as exc:
            raise PodSpecError("CreateContainerConfigError",
                               f"serviceaccount {sa!r} token: {exc}") from exc
        token = (resp.get("status") or {}).get("token", "")
        ca = Path(self.ca_file).read_bytes() if self.ca_file else b""
        directory = run.dir / "serviceaccount"
        rt.write_files(directory, {"token": token.encode(), "namespace":
                                   run.namespace.encode(), "ca.crt": ca}, 0o644)
        return str(directory)

    def _volumes(self, run: Any, spec: Obj, secrets: dict[str, dict[str, bytes]],
                 cms: dict[str, dict[str, bytes]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for v in spec.get("volumes") or []:
            name = v["name"]
            target = run.dir / "volumes" / name
            if "secret" in v or "configMap" in v:
                src = v.get("secret") or v.get("configMap") or {}
                ref = src.get("secretName") or src.get("name")
                data = (secrets if "secret" in v else cms).get(ref)
                if data is None and not src.get("optional"):
                    raise PodSpecError("CreateContainerConfigError",
                                       f"volume {name!r}: {ref!r} not found")
                data = data or {}
                if src.get("items"):
                    data = {i["path"]: data[i["key"]] for i in src["items"] if i["key"] in data}
                rt.write_files(target, data, 0o600 if "secret" in v else 0o644)
            elif "projected" in v:
                files: dict[str, bytes] = {}
                for s in v["projected"].get("sources") or []:
                    if "secret" in s or "configMap" in s:
                        ref = s.get("secret") or s.get("configMap") or {}
                        data = (secrets if "secret" in s else cms).get(ref.get("name"))
                        if data is None and not ref.get("optional"):
                            raise PodSpecError("CreateContainerConfigError",
                                               f"volume {name!r}: {ref.get('name')!r} not found")
                        data = data or {}
                        if ref.get("items"):
                            data = {i["path"]: data[i["key"]] for i in ref["items"]
                                    if i["key"] in data}
                        files.update(data)
                    elif "downwardAPI" in s:
                        files.update(downward_files(pod_meta(run), s["downwardAPI"]))
                    elif "serviceAccountToken" in s:
                        tok = run.dir / "serviceaccount" / "token"
                        if tok.exists():
                            files[s["serviceAccountToken"].get("path", "token")] = \
                                tok.read_bytes()
                rt.write_files(target, files)
            elif "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in v:
                node_fs = self.dirs.node_fs(self.cluster.name, run.node.name)
                path, private = host_path(v["hostPath"]["path"], str(node_fs))
                kind = v["hostPath"].get("type", "")
                if private and not os.path.exists(path):
                    if kind == "FileOrCreate":
                        Path(path).parent.mkdir(parents=True, exist_ok=True)
                        Path(path).touch()
                    else:  # DirectoryOrCreate, or "" (a real kubelet would fail the pod)
                        Path(path).mkdir(parents=True, exist_ok=True)
                out[name] = path
                continue
            elif "downwardAPI" in v:
                rt.write_files(target, downward_files(pod_meta(run), v["downwardAPI"]))
            else:
                continue
            out[name] = str(target)
        return out
