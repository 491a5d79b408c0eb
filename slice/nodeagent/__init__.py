"""Node agent: slice interfaces in pods, per-slice routing, VXLAN between nodes."""
