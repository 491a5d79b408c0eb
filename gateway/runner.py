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
    # Signal handlers only set plain flags (taking a lock in a handler can deadlock the
    # main thread); the wakeup fd and the gRPC thread wake the loop through a socketpair,
    # so a SIGHUP reload or a requested rotation happens at once, not at the next poll.
    flags = {"stop": False, "reload": False, "rotate": False}
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    rotations: queue.Queue[Future[str]] = queue.Queue()

    def ask_rotation() -> str:
        fut: Future[str] = Future()
        rotations.put(fut)
        with contextlib.suppress(OSError):
            wake_w.send(b"r")
        return fut.result(timeout=30)

    def on_signal(signum: int, _frame: object) -> None:
        actions: dict[int, str] = {signal.SIGHUP: "reload", signal.SIGUSR1: "rotate"}
        key = actions.get(signum, "stop")
        flags[key] = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, on_signal)
    old_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)

    server: grpc.Server | None = None
    metrics: WSGIServer | None = None
    try:
        gateway.apply(cfg)
        if opts.status_listen:
            from wgslice.gateway.status_server import serve

            server, _port = serve(gateway, opts.status_listen, rotate=ask_rotation,
                                    tls_cert=opts.tls_cert, tls_key=opts.tls_key,
                                    tls_ca=opts.tls_ca)
        if opts.metrics_port is not None:
            from wgslice.gateway.metrics import serve_metrics

            metrics = serve_metrics(gateway, opts.metrics_port, opts.metrics_addr)
        if opts.ready_file:
            _write_atomic(opts.ready_file, gateway.key.public_key + "\n")
        log.info("gateway %s/%s running, public key %s", cfg.slice, cfg.member,
                 gateway.key.public_key)
        next_tick = next_probe = next_rotation = time.monotonic()
        next_poll = next_tick + opts.poll
        if opts.rotate_every:
            next_rotation += opts.rotate_every
        retry_at = 0.0  # a reload that failed half-way is retried (not a refused config)
        while not flags["stop"]:
            now = time.monotonic()
            # The file is looked at every `poll` seconds, not on every wake-up (a probe,
            # a tick): `--poll 3600` means "SIGHUP only", as docs/gateway.md promises.
            if now >= next_poll:
                next_poll = now + opts.poll
                new_mtime = _mtime(opts.config)
            else:
                new_mtime = mtime
            if flags["reload"] or new_mtime != mtime or (retry_at and now >= retry_at):
                flags["reload"] = False
                mtime = new_mtime
                retry_at = 0.0 if _reload(gateway, opts.config) else now + RETRY_SECONDS
            if flags["rotate"] or (opts.rotate_every and now >= next_rotation):
                flags["rotate"] = False
                next_rotation = now + opts.rotate_every
                rotations.put(Future())
            while not rotations.empty():
                fut = rotations.get_nowait()
                try:
                    public = gateway.rotate_key()
                    if opts.ready_file:  # file-based readers see the current key too
                        _write_atomic(opts.ready_file, public + "\n")
                    fut.set_result(public)
                except Exception as exc:  # reported to the gRPC caller, logged here
                    log.error("key rotation failed: %s", exc)
                    fut.set_exception(exc)
            if now >= next_probe:
                # From the round's due time, not from now: a late round (a slow reload)
                # does not shift every later one.
                next_probe = max(next_probe + gateway.probe_interval, now)
                try:
                    gateway.probe()
                except Exception:  # e.g. netlink refused a route: retried next round
                    log.exception("probe round failed")
            if now >= next_tick:
                next_tick = now + opts.tick
                try:
                    gateway.tick()
                except Exception:  # one bad second must not kill the data path
                    log.exception("health tick failed")
            timeout = max(0.0, min(next_tick, next_probe, next_poll) - time.monotonic())
            if select.select([wake_r], [], [], timeout)[0]:
                with contextlib.suppress(OSError):
                    wake_r.recv(4096)
    finally:
        signal.set_wakeup_fd(old_wakeup)
        wake_r.close()
        wake_w.close()
        if server is not None:
            server.stop(0.5)
        if metrics is not None:
            metrics.shutdown()
        gateway.close()
        log.info("gateway stopped")
    return 0


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
