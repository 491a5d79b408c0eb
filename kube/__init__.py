"""wgslice's one door to Kubernetes: `Kube` (client.py), typed bodies (bodies.py), the kinds
(resources.py), one error hierarchy (errors.py) and each component's declared access
(access.py). Nothing else in the product talks to an API server.

This package imports nothing else of wgslice (.importlinter): it is the edge every
component stands on, like Kilo's Backend interface, and knows none of them.
"""

from wgslice.kube.access import Access, Rule
from wgslice.kube.client import Kube, kubeconfig_contexts
from wgslice.kube.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NoCredentials,
    NotFound,
    UndeclaredAccess,
    Unreachable,
)

__all__ = [
    "Access", "Conflict", "Forbidden", "Gone", "Invalid", "Kube", "KubeError", "NoCredentials",
    "NotFound",
    "Rule", "UndeclaredAccess", "Unreachable", "kubeconfig_contexts",
]
