"""Run by the fault tests inside a gateway node's network namespace (the gateways are
hostNetwork, so their status and metrics ports are on the node's address): every reply a
gateway gives, as bytes, for the private-key grep.

    python fault_scrape.py grpc HOST:PORT...    GetStatus and the first WatchStatus reply,
                                                serialized (raw protobuf) and as JSON
    python fault_scrape.py http HOST:PORT...    GET /metrics (anything that answers HTTP)

Prints one JSON object {target: base64 of the concatenated replies | "error: ..."}.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.request


def grpc_replies(target: str) -> bytes:
    import grpc
    from google.protobuf.json_format import MessageToJson

    from wgslice.proto.gateway.v1alpha1 import status_pb2, status_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = status_pb2_grpc.GatewayStatusServiceStub(channel)
        got = stub.GetStatus(status_pb2.GetStatusRequest(), timeout=5)
        out = [got.SerializeToString(), MessageToJson(got).encode()]
        stream = stub.WatchStatus(status_pb2.WatchStatusRequest(), timeout=5)
        first = next(iter(stream))
        stream.cancel()
        out += [first.SerializeToString(), MessageToJson(first).encode()]
    return b"\n".join(out)


def http_reply(target: str) -> bytes:
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as resp:
        return bytes(resp.read())


def main(argv: list[str]) -> int:
    mode, targets = argv[0], argv[1:]
    fetch = grpc_replies if mode == "grpc" else http_reply
    out = {}
    for t in targets:
        try:
            out[t] = base64.b64encode(fetch(t)).decode()
        except Exception as exc:  # reported; the test decides what a failure means
            out[t] = f"error: {exc!r}"[:500]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
