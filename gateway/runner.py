"""`wgslice gateway run`: the gateway as a process (what a gateway pod runs).

One main thread owns the device (and the wireguard-go child): it applies the config file,
reloads it on SIGHUP or when its mtime changes (polled every `poll` seconds, so the member
agent only has to write the file), probes the peers every `probeInterval` (the config's;
the routes of a peer that stopped answering are withdrawn there), recomputes the status once
a second, and performs key rotations (scheduled, SIGUSR1, or asked over gRPC, which queues
them here).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from wgslice.gateway.config import ConfigError, GatewayConfig, parse_config
from wgslice.gateway.keys import FileKeyStore, KeyStore, SecretKeyStore

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    import grpc

    from wgslice.gateway.service import Gateway

log = logging.getLogger("wgslice.gateway")

#: Delay before re-applying a config whose application failed (device restarting, ...).
RETRY_SECONDS = 2.0


@dataclass
class RunOptions:
    config: Path
    status_listen: str | None = None
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    key_file: Path | None = None
    key_secret: str | None = None  # "namespace/name"
    implementation: str = "auto"
    wireguard_go: str | None = None  # explicit binary; else $WGSLICE_WIREGUARD_GO, cache, PATH
    run_dir: Path = Path("/run/wgslice/gateway")
    rotate_every: float = 0.0
    poll: float = 0.5
    tick: float = 1.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    ready_file: Path | None = None


def load_config(path: Path) -> GatewayConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(raw)


def key_store(opts: RunOptions) -> KeyStore:
    if opts.key_secret:
        ns, _, name = opts.key_secret.partition("/")
        if not ns or not name:
            raise ConfigError("--key-secret must be NAMESPACE/NAME")
        return SecretKeyStore(ns, name)
    if opts.key_file:
        return FileKeyStore(opts.key_file)
    raise ConfigError("give --key-file FILE or --key-secret NAMESPACE/NAME")


def run(opts: RunOptions) -> int:
    from wgslice.gateway.service import Gateway

    # The file's version is noted *before* reading it: a change landing while the gateway
    # starts up (a new peer's key, say) then shows up as a newer mtime and is applied.
    mtime = _mtime(opts.config)
    cfg = load_config(opts.config)  # a bad first config is a startup error
    gateway = Gateway(key_store(opts), implementation=opts.implementation,
                      run_dir=opts.run_dir, wireguard_go=opts.wireguard_go)
    loop = _Loop(opts, gateway, mtime)
    old_wakeup = loop.install_signals()
    server: grpc.Server | None = None
    metrics: WSGIServer | None = None
    try:
        gateway.apply(cfg)
        server, metrics = _serve(opts, gateway, loop.ask_rotation)
        if opts.ready_file:
            _write_atomic(opts.ready_file, gateway.key.public_key + "\n")
        log.info("gateway %s/%s running, public key %s", cfg.slice, cfg.member,
                 gateway.key.public_key)
        loop.run()
    finally:
        signal.set_wakeup_fd(old_wakeup)
        loop.close()
        if server is not None:
            server.stop(0.5)
        if metrics is not None:
            metrics.shutdown()
        gateway.close()
        log.info("gateway stopped")
    return 0


def _serve(opts: RunOptions, gateway: Gateway, rotate: Callable[[], str]
           ) -> tuple[grpc.Server | None, WSGIServer | None]:
    """The gRPC status service and the Prometheus endpoint, each if asked for."""
    server: grpc.Server | None = None
    metrics: WSGIServer | None = None
    if opts.status_listen:
        from wgslice.gateway.status_server import serve

        server, _port = serve(gateway, opts.status_listen, rotate=rotate,
                              tls_cert=opts.tls_cert, tls_key=opts.tls_key, tls_ca=opts.tls_ca)
    if opts.metrics_port is not None:
        from wgslice.gateway.metrics import serve_metrics

        metrics = serve_metrics(gateway, opts.metrics_port, opts.metrics_addr)
    return server, metrics


class _Loop:
    """The main thread's duties, each at its own pace: reload the config (SIGHUP, or a newer
    mtime seen at a poll), rotate the key (scheduled, SIGUSR1, or asked over gRPC), probe the
    peers every `probeInterval`, recompute the status every `tick`.

    Signal handlers only set plain flags (taking a lock in a handler can deadlock the main
    thread); the wakeup fd and the gRPC thread wake the loop through a socketpair, so a
    SIGHUP reload or a requested rotation happens at once, not at the next deadline.
    """

    def __init__(self, opts: RunOptions, gateway: Gateway, mtime: float) -> None:
        self.opts, self.gateway, self.mtime = opts, gateway, mtime
        self.flags = {"stop": False, "reload": False, "rotate": False}
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.rotations: queue.Queue[Future[str]] = queue.Queue()
        now = time.monotonic()
        self.next_tick = self.next_probe = now
        self.next_poll = now + opts.poll
        self.next_rotation = now + opts.rotate_every if opts.rotate_every else now
        self.retry_at = 0.0  # a reload that failed half-way is retried (not a refused config)

    def install_signals(self) -> int:
        """Handlers for TERM/INT (stop), HUP (reload), USR1 (rotate); the old wakeup fd."""
        actions: dict[int, str] = {signal.SIGHUP: "reload", signal.SIGUSR1: "rotate"}

        def on_signal(signum: int, _frame: object) -> None:
            self.flags[actions.get(signum, "stop")] = True

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, on_signal)
        return signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)

    def ask_rotation(self) -> str:
        """Called from a gRPC thread: queue a rotation, wake the loop, wait for the key."""
        fut: Future[str] = Future()
        self.rotations.put(fut)
        with contextlib.suppress(OSError):
            self.wake_w.send(b"r")
        return fut.result(timeout=30)

    def run(self) -> None:
        while not self.flags["stop"]:
            now = time.monotonic()
            self._reload_if_due(now)
            self._rotate_if_due(now)
            self._probe(now)
            self._tick(now)
            timeout = max(0.0, min(self.next_tick, self.next_probe, self.next_poll)
                          - time.monotonic())
            if select.select([self.wake_r], [], [], timeout)[0]:
                with contextlib.suppress(OSError):
                    self.wake_r.recv(4096)

    def close(self) -> None:
        self.wake_r.close()
        self.wake_w.close()

    def _reload_if_due(self, now: float) -> None:
        # The file is looked at every `poll` seconds, not on every wake-up (a probe, a
        # tick): `--poll 3600` means "SIGHUP only", as docs/gateway.md promises.
        new_mtime = self.mtime
        if now >= self.next_poll:
            self.next_poll = now + self.opts.poll
            new_mtime = _mtime(self.opts.config)
        if (self.flags["reload"] or new_mtime != self.mtime
                or (self.retry_at and now >= self.retry_at)):
            self.flags["reload"] = False
            self.mtime = new_mtime
            ok = _reload(self.gateway, self.opts.config)
            self.retry_at = 0.0 if ok else now + RETRY_SECONDS

    def _rotate_if_due(self, now: float) -> None:
        every = self.opts.rotate_every
        if self.flags["rotate"] or (every and now >= self.next_rotation):
            self.flags["rotate"] = False
            self.next_rotation = now + every
            self.rotations.put(Future())
        while not self.rotations.empty():
            fut = self.rotations.get_nowait()
            try:
                public = self.gateway.rotate_key()
                if self.opts.ready_file:  # file-based readers see the current key too
                    _write_atomic(self.opts.ready_file, public + "\n")
                fut.set_result(public)
            except Exception as exc:  # reported to the gRPC caller, logged here
                log.error("key rotation failed: %s", exc)
                fut.set_exception(exc)

    def _probe(self, now: float) -> None:
        if now < self.next_probe:
            return
        # From the round's due time, not from now: a late round (a slow reload) does not
        # shift every later one.
        self.next_probe = max(self.next_probe + self.gateway.probe_interval, now)
        try:
            self.gateway.probe()
        except Exception:  # e.g. netlink refused a route: retried next round
            log.exception("probe round failed")

    def _tick(self, now: float) -> None:
        if now < self.next_tick:
            return
        self.next_tick = now + self.opts.tick
        try:
            self.gateway.tick()
        except Exception:  # one bad second must not kill the data path
            log.exception("health tick failed")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _reload(gateway, path: Path) -> bool:
    """Apply the file if it changed; False when applying failed and should be retried."""
    try:
        cfg = load_config(path)
        if cfg == gateway.config:  # e.g. a refused edit reverted: nothing to do but say so
            if gateway.config_error:
                gateway.refuse("")
            return True
        gateway.apply(cfg)
        log.info("applied %s (generation %d)", path, gateway.generation)
    except ConfigError as exc:
        log.error("refused new config, keeping the running one: %s", exc)
        gateway.refuse(str(exc))
    except Exception as exc:  # device or netlink failed mid-way: report, retry shortly
        log.exception("applying %s failed; retrying in %.0f s", path, RETRY_SECONDS)
        gateway.refuse(f"applying the config failed: {exc}")
        return False
    return True
