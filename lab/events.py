"""Kubernetes Events from the lab's kubelet and scheduler (what `kubectl describe` shows).

Best effort, like the real recorders: an event that cannot be written is dropped.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

from wgslice.lab.kubeclient import Client, path_for


async def record(client: Client, obj: dict[str, Any], reason: str, message: str,
                 component: str, kind: str = "Pod", etype: str = "Normal",
                 host: str = "") -> None:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'x')}.{secrets.token_hex(8)}",
                     "namespace": ns},
        "involvedObject": {"kind": kind, "apiVersion": "v1", "name": meta.get("name"),
                           "namespace": ns, "uid": meta.get("uid")},
        "reason": reason, "message": message, "type": etype, "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": component, **({"host": host} if host else {})},
        "reportingComponent": component, "reportingInstance": host or component,
    }
    with contextlib.suppress(Exception):
        await client.create(path_for("v1", "events", ns), event)
