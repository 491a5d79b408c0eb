"""WireGuard device adapters: kernel (netlink) or userspace wireguard-go (UAPI socket).

Both are driven through the `wireguard-tools` package (reading: ``get_config`` of its
netlink/UAPI devices; writing: per-peer operations, never ``replace_peers``, so touching one
peer leaves the others' sessions alone). Nothing here parses `wg` output.

wireguard-go's control socket is hard-wired to ``/var/run/wireguard/IFNAME.sock`` for the
whole host (and ``WG_UAPI_FD`` does not help: it still watches that path). We start it in a
private mount namespace with a per-gateway directory bind-mounted on ``/var/run/wireguard``,
so two gateways with the same interface name in two network namespaces never meet; see
docs/gateway.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from wgslice.gateway.config import PeerConfig
from wgslice.gateway.keys import PrivateKey

log = logging.getLogger(__name__)

KERNEL, USERSPACE = "kernel", "wireguard-go"

#: Explicit wireguard-go binary (also `wgslice gateway run --wireguard-go PATH`).
ENV_BINARY = "WGSLICE_WIREGUARD_GO"
#: Root of the per-machine upstream build cache written by scripts/build-upstream.sh.
ENV_UPSTREAM = "WGSLICE_UPSTREAM"
DEFAULT_UPSTREAM = "/var/cache/wgslice/upstream"
#: First upstream release with vectorized I/O and TUN/UDP GSO/GRO (0.0.20250522 fixes GRO).
FAST_SINCE = (0, 0, 20250515)


class DeviceError(RuntimeError):
    """The WireGuard device refused an operation or went away."""


@dataclass(frozen=True)
class PeerCounters:
    public_key: str
    endpoint: str
    allowed_ips: tuple[str, ...]
    latest_handshake: float  # UNIX time, 0 = never
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class DeviceSnapshot:
    listen_port: int
    public_key: str
    peers: dict[str, PeerCounters] = field(default_factory=dict)


class Device(Protocol):
    implementation: str
    version: str  # "v0.0.20250522" (wireguard-go) or "linux 6.18" (kernel)
    ifname: str

    def set_interface(self, private_key: PrivateKey | None, listen_port: int | None) -> None: ...
    def set_peer(self, peer: PeerConfig, keepalive: int, *, endpoint: bool) -> None: ...
    def remove_peer(self, public_key: str) -> None: ...
    def read(self) -> DeviceSnapshot: ...
    def alive(self) -> bool: ...
    def close(self) -> None: ...


def _b64_to_hex(key: str) -> str:
    import base64

    return base64.b64decode(key).hex()


def _snapshot(config) -> DeviceSnapshot:
    peers = {}
    for key, p in config.peers.items():
        endpoint = ""
        if p.endpoint_host is not None and p.endpoint_port:
            host = str(p.endpoint_host)
            endpoint = f"[{host}]:{p.endpoint_port}" if ":" in host else f"{host}:{p.endpoint_port}"
        peers[str(key)] = PeerCounters(
            public_key=str(key),
            endpoint=endpoint,
            allowed_ips=tuple(str(a) for a in p.allowed_ips),
            latest_handshake=float(p.last_handshake or 0),
            rx_bytes=int(p.rx_bytes or 0),
            tx_bytes=int(p.tx_bytes or 0),
        )
    public = str(config.private_key.public_key()) if config.private_key else ""
    config.private_key = None  # do not keep the device's copy around
    return DeviceSnapshot(int(config.listen_port or 0), public, peers)


# ------------------------------------------------------------------------ wireguard-go


@dataclass(frozen=True)
class Binary:
    """The wireguard-go program the gateway runs, where it came from, and its version."""

    path: str
    source: str  # "--wireguard-go", "$WGSLICE_WIREGUARD_GO", "upstream cache", "PATH"
    version: str = ""  # "v0.0.20250522" as the program reports it; "" if unknown

    @property
    def fast(self) -> bool:
        """Whether this release has vectorized I/O and TUN/UDP segmentation offloads."""
        v = parse_version(self.version)
        return v is not None and v >= FAST_SINCE

    def describe(self) -> str:
        return f"wireguard-go {self.version or '(version unknown)'} ({self.path}, {self.source})"


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``wireguard-go v0.0.20250522`` (or just ``v0.0.20250522``) -> (0, 0, 20250522)."""
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def binary_version(path: str) -> str:
    """What ``wireguard-go --version`` prints as its version (first line), "" on failure."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"wireguard-go (v\S+)", out)
    return m[1] if m else ""


def find_wireguard_go(explicit: str | None = None, *,
                      env: Mapping[str, str] | None = None) -> Binary:
    """The wireguard-go to run, in order: *explicit* (``--wireguard-go``), then
    ``$WGSLICE_WIREGUARD_GO``, then the pinned upstream build
    (``$WGSLICE_UPSTREAM``/bin/wireguard-go, default /var/cache/wgslice/upstream, made by
    scripts/build-upstream.sh), then ``wireguard-go`` on PATH (Debian's 2022 build here: it
    works, slowly, and a warning says so). An explicit choice that is not an executable file
    is an error, never silently replaced."""
    if env is None:
        env = os.environ
    for value, source in ((explicit, "--wireguard-go"), (env.get(ENV_BINARY), f"${ENV_BINARY}")):
        if value:
            if not (os.path.isfile(value) and os.access(value, os.X_OK)):
                raise DeviceError(f"{source} names {value!r}, which is not an executable file")
            return Binary(os.path.abspath(value), source, binary_version(value))
    tried = []
    cache = os.path.join(env.get(ENV_UPSTREAM) or DEFAULT_UPSTREAM, "bin", "wireguard-go")
    tried.append(cache)
    if os.path.isfile(cache) and os.access(cache, os.X_OK):
        return Binary(os.path.realpath(cache), "upstream cache", binary_version(cache))
    found = shutil.which("wireguard-go", path=env.get("PATH"))
    tried.append("wireguard-go on PATH")
    if found:
        return Binary(found, "PATH", binary_version(found))
    raise DeviceError(
        "no kernel WireGuard and no wireguard-go: tried " + ", ".join(tried)
        + f"; build the pinned one with `bash scripts/build-upstream.sh wireguard-go` "
        f"(or scripts/setup.sh), or name one with --wireguard-go / ${ENV_BINARY}")


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    """Die with the gateway: a SIGKILLed gateway must not leave wireguard-go behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _link_exists(ifname: str) -> bool:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def _wait_link_gone(ifname: str, timeout: float, *, delete: bool = False) -> None:
    """A tun device outlives its wireguard-go for a moment; a new wireguard-go that attaches
    to the dying one exits when it vanishes (seen here on quick restarts). Wait it out, or
    delete a stale one left by a crashed predecessor."""
    from pyroute2 import IPRoute, NetlinkError

    deadline = time.monotonic() + timeout
    while _link_exists(ifname):
        if time.monotonic() > deadline:
            if not delete:
                return
            with IPRoute() as ipr, contextlib.suppress(NetlinkError):
                ipr.link("del", ifname=ifname)
            delete = False
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


class UserspaceDevice:
    """A wireguard-go child process plus its private UAPI socket."""

    implementation = USERSPACE

    def __init__(self, ifname: str, run_dir: Path, *, start_timeout: float = 5.0,
                 binary: Binary | None = None) -> None:
        self.ifname = ifname
        self.run_dir = run_dir
        self.sock = run_dir / f"{ifname}.sock"
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()
        _wait_link_gone(ifname, 2.0, delete=True)
        self.binary = binary or find_wireguard_go()
        self.version = self.binary.version
        env = dict(os.environ, WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1")
        env.setdefault("LOG_LEVEL", "error")
        script = (
            'mkdir -p /run/wireguard && mount --bind "$0" /run/wireguard '
            '&& exec "$1" -f "$2"'
        )
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
               str(run_dir), self.binary.path, ifname]
        # The child must be created by a thread that lives as long as the gateway (the
        # death signal fires when the creating *thread* exits): the gateway's main loop.
        # Own session: signals sent to the gateway's process group (a terminal's Ctrl-C, a
        # `kill -HUP -PGID`) must not reach wireguard-go, which dies on SIGHUP. It still
        # dies with the gateway (death signal) and is stopped by `close`.
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     preexec_fn=_set_pdeathsig, start_new_session=True)
        deadline = time.monotonic() + start_timeout
        while not self.sock.exists():
            if self.proc.poll() is not None:
                raise DeviceError(f"wireguard-go exited with {self.proc.returncode} "
                                  f"creating {ifname}")
            if time.monotonic() > deadline:
                self.close()
                raise DeviceError(f"wireguard-go did not open {self.sock} in time")
            time.sleep(0.02)

    def _request(self, payload: str) -> list[tuple[str, str]]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(payload.encode())
            buf = b""
            while not buf.endswith(b"\n\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        parts = (line.partition("=") for line in buf.decode().splitlines())
        return [(key, value) for key, sep, value in parts if sep]

    def _set(self, lines: list[str]) -> None:
        reply = self._request("set=1\n" + "".join(f"{line}\n" for line in lines) + "\n")
        errno = dict(reply).get("errno", "?")
        if errno != "0":
            raise DeviceError(f"wireguard-go refused the update (errno={errno})")

    def set_interface(self, private_key: PrivateKey | None, listen_port: int | None) -> None:
        lines = []
        if private_key is not None:
            lines.append(f"private_key={private_key.reveal_hex()}")
        if listen_port is not None:
            lines.append(f"listen_port={listen_port}")
        self._set(lines)

    def set_peer(self, peer: PeerConfig, keepalive: int, *, endpoint: bool) -> None:
        lines = [f"public_key={_b64_to_hex(peer.public_key)}"]
        if endpoint and peer.endpoint is not None:
            lines.append(f"endpoint={peer.endpoint}")
        lines.append(f"persistent_keepalive_interval={keepalive}")
        lines.append("replace_allowed_ips=true")
        lines.extend(f"allowed_ip={s}" for s in peer.subnets)
        self._set(lines)

    def remove_peer(self, public_key: str) -> None:
        self._set([f"public_key={_b64_to_hex(public_key)}", "remove=true"])

    def read(self) -> DeviceSnapshot:
        from wireguard_tools.wireguard_uapi import WireguardUAPIDevice

        dev = WireguardUAPIDevice(self.sock)
        try:
            return _snapshot(dev.get_config())
        finally:
            dev.close()

    def alive(self) -> bool:
        return self.proc.poll() is None and self.sock.exists()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()
        _wait_link_gone(self.ifname, 2.0)


# ------------------------------------------------------------------------------ kernel


class KernelDevice:
    """A kernel WireGuard link driven over generic netlink (pyroute2 via wireguard-tools)."""

    implementation = KERNEL

    def __init__(self, ifname: str) -> None:
        from pyroute2 import IPRoute, NetlinkError

        self.ifname = ifname
        self.version = f"linux {os.uname().release}"
        with IPRoute() as ipr:
            try:
                if not ipr.link_lookup(ifname=ifname):
                    ipr.link("add", ifname=ifname, kind="wireguard")
            except NetlinkError as exc:
                raise DeviceError(f"kernel WireGuard unavailable: {exc}") from None
        from wireguard_tools.wireguard_netlink import WireguardNetlinkDevice

        self._dev = WireguardNetlinkDevice(ifname)

    def set_interface(self, private_key: PrivateKey | None, listen_port: int | None) -> None:
        self._dev.wg.set(self.ifname,
                         private_key=private_key.reveal_base64() if private_key else None,
                         listen_port=listen_port)

    def set_peer(self, peer: PeerConfig, keepalive: int, *, endpoint: bool) -> None:
        spec: dict[str, object] = {
            "public_key": peer.public_key,
            "persistent_keepalive": keepalive,
            "allowed_ips": [str(s) for s in peer.subnets],
        }
        if endpoint and peer.endpoint is not None:
            spec["endpoint_addr"] = str(peer.endpoint.host)
            spec["endpoint_port"] = peer.endpoint.port
        self._dev.wg.set(self.ifname, peer=spec)

    def remove_peer(self, public_key: str) -> None:
        self._dev.wg.set(self.ifname, peer={"public_key": public_key, "remove": True})

    def read(self) -> DeviceSnapshot:
        return _snapshot(self._dev.get_config())

    def alive(self) -> bool:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return bool(ipr.link_lookup(ifname=self.ifname))

    def close(self) -> None:
        from pyroute2 import IPRoute

        self._dev.close()
        with IPRoute() as ipr, contextlib.suppress(Exception):
            ipr.link("del", ifname=self.ifname)


def open_device(ifname: str, implementation: str, run_dir: Path, *,
                wireguard_go: str | None = None) -> Device:
    """Kernel WireGuard when the kernel has it (or when asked), else wireguard-go
    (`find_wireguard_go` picks which one)."""
    if implementation in ("auto", KERNEL):
        try:
            return KernelDevice(ifname)
        except DeviceError as exc:
            if implementation == KERNEL:
                raise
            log.info("%s; using wireguard-go", exc)
    binary = find_wireguard_go(wireguard_go)
    if not binary.fast:
        log.warning("%s predates vectorized I/O and TUN/UDP offloads (upstream 0.0.20250515):"
                    " several times slower; build the pinned one with "
                    "`bash scripts/build-upstream.sh wireguard-go`", binary.describe())
    return UserspaceDevice(ifname, run_dir, binary=binary)
