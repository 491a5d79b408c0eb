"""The lab: Kubernetes clusters on one machine, each with the real control plane
(`controlplane`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler built from their
Go modules) and nodes and pods as network namespaces run by the lab's own kubelet.

`Lab` (lab/handle.py) is the programmatic entry; `wgslice lab ...` the CLI; docs/lab.md the
guide; `standalone.ControlPlane` a node-less control plane for integration tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wgslice.lab.handle import Lab

__all__ = ["Lab"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m wgslice.lab.cni` does not import the handle.
    if name == "Lab":
        from wgslice.lab.handle import Lab

        return Lab
    raise AttributeError(name)
