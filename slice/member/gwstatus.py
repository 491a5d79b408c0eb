"""Reads a gateway's status over its gRPC status service (proto/gateway/v1alpha1)."""

from __future__ import annotations

from typing import Any


def fetch_status(host: str, port: int, timeout: float = 2.0) -> tuple[dict[str, Any] | None, str]:
    """(status as a dict with the proto's field names, "") or (None, why it failed)."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    from wgslice.proto.gateway.v1alpha1 import status_pb2, status_pb2_grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with grpc.insecure_channel(target) as channel:
            stub = status_pb2_grpc.GatewayStatusServiceStub(channel)
            reply = stub.GetStatus(status_pb2.GetStatusRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        return None, f"gateway status at {target}: {exc.code().name} {exc.details() or ''}".strip()
    data = MessageToDict(
        reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for peer in data.get("peers") or []:
        state = peer.get("state")
        if isinstance(state, str):  # MessageToDict renders enums by name
            peer["state"] = {
                "PEER_STATE_CONNECTING": 1,
                "PEER_STATE_CONNECTED": 2,
                "PEER_STATE_DEGRADED": 3,
                "PEER_STATE_DOWN": 4,
            }.get(state, 1)
    return data, ""
