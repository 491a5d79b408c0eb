"""The lab: emulated Kubernetes clusters in network namespaces on one machine.

`Lab` (lab/handle.py) is the programmatic entry; `wgslice lab ...` the CLI; docs/lab.md the
guide. The API server lives in `wgslice.lab.apiserver`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wgslice.lab.handle import Lab

__all__ = ["Lab"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m wgslice.lab.cni` and the API server do not import the handle.
    if name == "Lab":
        from wgslice.lab.handle import Lab

        return Lab
    raise AttributeError(name)
