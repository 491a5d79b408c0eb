"""Shipped defaults, read from the same YAML the hub chart installs (slice/crds/)."""

from __future__ import annotations

from functools import cache

import yaml

from wgslice.slice.crds import CRD_DIR
from wgslice.slice.parse import parse_pool
from wgslice.slice.specs import OverlayPool


@cache
def default_pools() -> tuple[OverlayPool, ...]:
    """The OverlayPool(s) the hub chart creates, so plans match an installed hub."""
    path = CRD_DIR / "default-pool.yaml"
    pools = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "OverlayPool":
            pool, problems = parse_pool(doc, str(path))
            if problems or pool is None:  # a broken shipped file is a bug, not user error
                raise RuntimeError("; ".join(map(str, problems)))
            pools.append(pool)
    return tuple(pools)
