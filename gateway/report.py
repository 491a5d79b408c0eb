"""The gateway's status in the shape of ``MemberSlice.status`` (docs/api.md).

The member agent reads the gateway over gRPC and writes this dict into the hub; keeping the
mapping here (pure) means the agent and the gateway cannot drift apart on field names.
Only public data goes in: the public key, never a private one.
"""

from __future__ import annotations

import datetime
from typing import Any

from wgslice.gateway.status import GatewayStatus


def _rfc3339(ts: float) -> str | None:
    if not ts:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def member_slice_status(status: GatewayStatus, endpoint: str = "") -> dict[str, Any]:
    """*endpoint* is the address peers dial (known to the agent: node IP or override)."""
    tunnels = []
    for p in status.peers:
        tunnels.append({
            "peer": p.member,
            "endpoint": p.endpoint,
            "state": p.state,
            "reason": p.reason,
            "routed": p.routed,
            "latestHandshake": _rfc3339(p.latest_handshake),
            "rttMs": {"last": _ms(p.rtt_last), "min": _ms(p.rtt_min), "avg": _ms(p.rtt_avg),
                      "max": _ms(p.rtt_max)},
            "loss": round(p.loss, 4),
            "rxBytes": p.rx_bytes,
            "txBytes": p.tx_bytes,
        })
    return {
        "publicKey": status.public_key,
        "endpoint": endpoint,
        "implementation": status.implementation,
        "listenPort": status.listen_port,
        "mtu": status.mtu,
        "tunnels": tunnels,
    }
