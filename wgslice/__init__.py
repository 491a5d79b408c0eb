"""wgslice: multi-cluster overlay network slices for Kubernetes over WireGuard."""

__version__ = "0.1.0"
