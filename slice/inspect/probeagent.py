"""The program in `wgslice verify`'s probe pods: answer probes, probe the others, report.

Exec-free: the pod talks only to its own cluster's API, and only to its own ConfigMap
(`get`/`patch` on that one name). `verify` writes into it this pod's slice address and the
others' (`self`, `targets`); the pod waits until it can bind its slice address (the node
agent has attached it), probes every target over UDP, and patches `result` back. It keeps
answering the others' probes until `verify` deletes it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from wgslice.kube import Access, Rule
from wgslice.kube import resources as r

PORT = 51999
FIELD_MANAGER = "wgslice-verify"
#: What the probe pod calls: its one ConfigMap. `verify` derives the pod's Role from it
#: (verify.objects), narrowed to that one name.
ACCESS = Access.of("wgslice-verify-<run>", "(made by wgslice verify)", [
    Rule(r.CONFIGMAPS, ("get", "patch")),
], why="reads the addresses verify writes, reports its results")
ATTEMPTS = 8
log = logging.getLogger("wgslice.verify")


def echo_server(stop: threading.Event) -> None:
    """Answers every datagram on PORT with the same bytes (any address: slice0 included)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", PORT))
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
        except TimeoutError:
            continue
        except OSError:
            return
        if data.startswith(b"wgslice-verify"):
            sock.sendto(data, peer)


def probe(source: str, target: str, attempts: int = ATTEMPTS, timeout: float = 1.0
          ) -> dict[str, Any]:
    """UDP echo from `source` to `target`: ok, best RTT in ms, attempts used."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        for i in range(attempts):
            payload = f"wgslice-verify {source} {i} {time.monotonic_ns()}".encode()
            t0 = time.monotonic()
            try:
                sock.sendto(payload, (target, PORT))
                while True:
                    data, _ = sock.recvfrom(2048)
                    if data == payload:
                        return {"ok": True, "rttMs": round((time.monotonic() - t0) * 1000, 3),
                                "attempts": i + 1}
            except TimeoutError:
                continue
            except OSError as exc:
                return {"ok": False, "error": f"{exc.strerror or exc}", "attempts": i + 1}
        return {"ok": False, "error": f"no answer to {attempts} probes", "attempts": attempts}
    finally:
        sock.close()


def _bindable(address: str) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((address, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main(configmap: str, member: str, timeout: float = 60.0) -> int:
    from wgslice.kube import Kube, KubeError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # the pod's ServiceAccount: get/patch on its one ConfigMap (verify.py's Role)
    kube = Kube.connect(field_manager=FIELD_MANAGER, access=ACCESS)
    ns = os.environ.get("POD_NAMESPACE", "")
    if not ns:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as fh:
            ns = fh.read().strip()
    stop = threading.Event()
    threading.Thread(target=echo_server, args=(stop,), daemon=True).start()
    deadline = time.monotonic() + timeout
    data: dict[str, str] = {}
    announced = False
    while time.monotonic() < deadline:
        try:
            data = kube.get(r.CONFIGMAPS, configmap, ns).get("data") or {}
        except KubeError as exc:
            log.info("waiting for ConfigMap %s: %s", configmap, exc)
        if data.get("self") and not announced and _bindable(data["self"]):
            # our slice address is on slice0: tell verify, which waits for every pod
            kube.patch(r.CONFIGMAPS, configmap, {"data": {"ready": "true"}}, ns)
            announced = True
        if announced and data.get("targets"):
            break
        time.sleep(0.5)
    else:
        log.error("no slice address or no targets before the deadline: %s", data)
        return 1
    me, targets = data["self"], json.loads(data["targets"])
    log.info("%s at %s probing %s", member, me, targets)
    results = {m: probe(me, addr) for m, addr in sorted(targets.items())}
    kube.patch(r.CONFIGMAPS, configmap, {"data": {"result": json.dumps(results)}}, ns)
    log.info("results: %s", results)
    while time.monotonic() < deadline + 60:  # keep answering the others until deleted
        time.sleep(1)
    stop.set()
    return 0
