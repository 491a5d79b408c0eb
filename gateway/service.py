"""The `Gateway`: reconciles a desired `GatewayConfig` onto a WireGuard device, probes every
peer every `probeInterval` (withdrawing the routes of peers that stopped answering when
`withdrawDown` is set) and keeps a status snapshot for gRPC, metrics and the member agent.

Threading: `apply`, `probe`, `tick`, `rotate_key` and `close` are called from one thread (the
process's main loop; it also owns the wireguard-go child). Readers (`status`, `wait_change`)
may come from any thread: they only see immutable snapshots under a condition variable.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from wgslice.gateway import netconf
from wgslice.gateway.config import (
    DEFAULT_PROBE_INTERVAL,
    ConfigError,
    GatewayConfig,
    PeerConfig,
    diff_peers,
)
from wgslice.gateway.device import Device, DeviceSnapshot, open_device
from wgslice.gateway.health import ProbeWindow, peer_health
from wgslice.gateway.keys import KeyStore, PrivateKey, load_or_create
from wgslice.gateway.probe import EchoResponder, Prober
from wgslice.gateway.routing import Streaks, peers_installed, routed_peers, wanted_routes
from wgslice.gateway.status import GatewayStatus, PeerStatus

__all__ = ["Gateway", "GatewayStatus", "PeerStatus"]

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, key_store: KeyStore, *, implementation: str = "auto",
                 run_dir: Path = Path("/run/wgslice/gateway"),
                 wireguard_go: str | None = None) -> None:
        self.key_store = key_store
        self.implementation_pref = implementation
        self.wireguard_go = wireguard_go
        self.run_dir = run_dir
        self.key, created = load_or_create(key_store)
        log.info("%s key %s (public %s)", "created" if created else "loaded",
                 key_store.describe(), self.key.public_key)
        self.config: GatewayConfig | None = None
        self.device: Device | None = None
        self.mtu = 0
        self.generation = 0
        self.key_rotated_at = 0.0
        self.config_error = ""
        self._responder: EchoResponder | None = None
        self._prober: Prober | None = None
        self._windows: dict[str, ProbeWindow] = {}
        self._configured_at: dict[str, float] = {}
        self._last_counters: dict[str, tuple[float, int, int]] = {}
        self._rates: dict[str, tuple[float, float]] = {}
        self._routed: frozenset[str] = frozenset()  # members whose subnets we decided to route
        self._installed: frozenset[str] = frozenset()  # ... and whose routes the table holds
        self.mss = 0
        self._results_lock = threading.Lock()
        self._status = GatewayStatus()
        self._cond = threading.Condition()
        self._version = 0

    # ------------------------------------------------------------------ reconcile

    def _validate_against_self(self, cfg: GatewayConfig) -> None:
        for p in cfg.peers:
            if p.public_key == self.key.public_key:
                raise ConfigError(f"peer {p.member}: publicKey is this gateway's own key")

    def apply(self, cfg: GatewayConfig) -> None:
        """Make the device match *cfg*. On `ConfigError` nothing was changed."""
        self._validate_against_self(cfg)
        old = self.config
        structural = old is None or (old.ifname, old.table, old.cidr, old.subnet, old.address,
                                     old.probe_port) != (cfg.ifname, cfg.table, cfg.cidr,
                                                         cfg.subnet, cfg.address, cfg.probe_port)
        if structural and old is not None:
            self._teardown()
        if self.device is None or not self.device.alive():
            self._bring_up(cfg)
        else:
            self._update(old, cfg)
        self.config = cfg
        self.config_error = ""
        self.generation += 1
        self._refresh_status()

    def refuse(self, error: str) -> None:
        """Record a refused config (the running one stays) so status shows why; "" clears."""
        self.config_error = error
        self._refresh_status()

    def _endpoints(self, cfg: GatewayConfig) -> list[str]:
        return [str(p.endpoint.host) for p in cfg.peers if p.endpoint]

    def _bring_up(self, cfg: GatewayConfig) -> None:
        if self.device is not None:  # died: clean what it left before starting again
            self._teardown()
        from wgslice.gateway.config import effective_mtu, tcp_mss

        # Per (member, slice): two members' gateways of one slice may share a host (the lab).
        dev = open_device(cfg.ifname, self.implementation_pref,
                          self.run_dir / f"{cfg.member}.{cfg.ifname}",
                          wireguard_go=self.wireguard_go)
        self.device = dev
        dev.set_interface(self.key, cfg.listen_port)
        now = time.time()
        for p in cfg.peers:
            if p.public_key:
                dev.set_peer(p, cfg.keepalive, endpoint=True)
                self._configured_at[p.public_key] = now
        self.mtu = effective_mtu(cfg, netconf.underlay_mtu(self._endpoints(cfg)))
        netconf.configure_link(cfg.ifname, cfg, self.mtu)
        self._route(cfg, force=True)
        netconf.sync_rules(cfg.ifname, cfg)
        netconf.clamp_mss(cfg.ifname, cfg, self.mtu)
        self.mss = tcp_mss(self.mtu, cfg.cidr.version)
        addr = str(cfg.address)
        self._responder = EchoResponder(addr, cfg.probe_port)
        self._prober = Prober(addr, self._on_probe, timeout=cfg.probe_interval)
        binary = getattr(dev, "binary", None)
        log.info("%s up (%s %s%s), mtu %d, %d peers", cfg.ifname, dev.implementation,
                 getattr(dev, "version", "") or "version unknown",
                 f", {binary.path} from {binary.source}" if binary else "", self.mtu,
                 sum(1 for p in cfg.peers if p.public_key))

    def _update(self, old: GatewayConfig | None, cfg: GatewayConfig) -> None:
        from wgslice.gateway.config import effective_mtu, tcp_mss

        assert self.device is not None and old is not None
        dev = self.device
        if old.listen_port != cfg.listen_port:
            dev.set_interface(None, cfg.listen_port)
        d = diff_peers(old.peers, cfg.peers)
        for p in d.remove:
            dev.remove_peer(p.public_key)
            self._configured_at.pop(p.public_key, None)
        for before, after in d.update:
            # Re-sending an unchanged endpoint would undo roaming; send it only if it moved.
            dev.set_peer(after, cfg.keepalive, endpoint=before.endpoint != after.endpoint)
        for p in d.add:
            dev.set_peer(p, cfg.keepalive, endpoint=True)
            self._configured_at[p.public_key] = time.time()
        if old.keepalive != cfg.keepalive:
            for p in d.unchanged:
                dev.set_peer(p, cfg.keepalive, endpoint=False)
        mtu = effective_mtu(cfg, netconf.underlay_mtu(self._endpoints(cfg)))
        if mtu != self.mtu:
            self.mtu = mtu
            netconf.configure_link(cfg.ifname, cfg, mtu)
            netconf.clamp_mss(cfg.ifname, cfg, mtu)
        self.mss = tcp_mss(self.mtu, cfg.cidr.version)
        members = {p.member for p in cfg.peers}
        with self._results_lock:
            for m in list(self._windows):
                if m not in members:
                    del self._windows[m]
            for m in list(self._last_counters):
                if m not in members:
                    del self._last_counters[m]
                    self._rates.pop(m, None)
        self._route(cfg, force=True)
        if self._prober is not None:
            self._prober.timeout = cfg.probe_interval
        if not d.empty:
            log.info("peers: +%d ~%d -%d", len(d.add), len(d.update), len(d.remove))

    def _teardown(self) -> None:
        for closer in (self._prober, self._responder):
            if closer is not None:
                closer.close()
        self._prober = self._responder = None
        cfg = self.config
        if self.device is not None:
            self.device.close()
            self.device = None
        if cfg is not None:
            netconf.remove_rules(cfg.ifname, cfg)
            netconf.unclamp_mss(cfg.ifname, cfg)

    def close(self) -> None:
        self._teardown()
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    # -------------------------------------------------------------------- rotation

    def rotate_key(self) -> str:
        """New key pair: persist first, then switch the device. Returns the public key.

        Peers keep the old public key until the control plane hands them the new one; the
        interruption is that propagation time plus one handshake (docs/gateway.md)."""
        new = PrivateKey.generate()
        self.key_store.save(new)
        self.key = new
        if self.device is not None:
            self.device.set_interface(new, None)
        self.key_rotated_at = time.time()
        log.info("rotated key; new public key %s", new.public_key)
        self._refresh_status()
        return new.public_key

    # ---------------------------------------------------------------------- health

    def _on_probe(self, member: str, rtt: float | None) -> None:
        with self._results_lock:
            window = self._windows.setdefault(member, ProbeWindow())
            window.record(rtt)

    @property
    def probe_interval(self) -> float:
        return self.config.probe_interval if self.config else DEFAULT_PROBE_INTERVAL

    def probe(self) -> None:
        """One probe round (every `probeInterval`): settle and send the probes, then decide
        which peers are routed; a changed decision is applied and announced at once."""
        cfg = self.config
        if cfg is None or self._prober is None:
            return
        self._prober.tick({p.member: (str(p.tunnel_address), cfg.probe_port)
                           for p in cfg.peers if p.public_key})
        if self._route(cfg):
            self._refresh_status()

    def _route(self, cfg: GatewayConfig, *, force: bool = False) -> bool:
        """Decide the routed peers from the probe streaks; sync the table when the decision
        changed (or *force*: a new config or device). True when the table was synced."""
        with self._results_lock:
            streaks = {m: Streaks(w.streak_lost, w.streak_answered)
                       for m, w in self._windows.items()}
        decision = routed_peers(cfg.peers, streaks, withdraw_down=cfg.withdraw_down,
                                routed=self._routed)
        if decision == self._routed and not force:
            return False
        installed = netconf.sync_routes(cfg.ifname, cfg, wanted_routes(cfg, decision))
        for member in sorted(self._routed - decision):
            if cfg.peer(member) is not None:
                log.warning("%s: withdrew the routes to %s (%d probes in a row unanswered)",
                            cfg.ifname, member, streaks.get(member, Streaks()).lost)
        for member in sorted(decision - self._routed):
            log.info("%s: routing %s", cfg.ifname, member)
        self._routed = decision
        self._installed = peers_installed(cfg, installed) & decision
        return True

    def tick(self) -> None:
        """One second of life: revive a dead device, recompute the status (the probes run on
        their own schedule, `probe`)."""
        cfg = self.config
        if cfg is None:
            return
        if self.device is None or not self.device.alive():
            log.warning("WireGuard device %s is gone; recreating it", cfg.ifname)
            self._bring_up(cfg)
        self._refresh_status()

    def _refresh_status(self) -> None:
        cfg = self.config
        now = time.time()
        snap = DeviceSnapshot(0, "", {})
        if self.device is not None and self.device.alive():
            try:
                snap = self.device.read()
            except (OSError, RuntimeError) as exc:
                log.warning("reading %s failed: %s", cfg.ifname if cfg else "?", exc)
        peers: list[PeerStatus] = []
        for p in cfg.peers if cfg else ():
            peers.append(self._peer_status(p, snap, now))
        status = GatewayStatus(
            slice=cfg.slice if cfg else "", member=cfg.member if cfg else "",
            interface=cfg.ifname if cfg else "",
            implementation=self.device.implementation if self.device else "",
            implementation_version=getattr(self.device, "version", "") if self.device else "",
            public_key=self.key.public_key, listen_port=snap.listen_port or (
                cfg.listen_port if cfg else 0),
            mtu=self.mtu, mss=self.mss,
            tunnel_address=str(cfg.address) if cfg else "", table=cfg.table if cfg else 0,
            config_error=self.config_error, generation=self.generation,
            key_rotated_at=self.key_rotated_at, updated_at=now, peers=tuple(peers))
        with self._cond:
            changed = status.significant() != self._status.significant()
            self._status = status
            if changed:
                self._version += 1
                self._cond.notify_all()

    def _peer_status(self, p: PeerConfig, snap: DeviceSnapshot, now: float) -> PeerStatus:
        c = snap.peers.get(p.public_key) if p.public_key else None
        with self._results_lock:
            window = self._windows.get(p.member)
            stats = window.stats() if window else ProbeWindow().stats()
            sent = window.sent_total if window else 0
            lost = window.lost_total if window else 0
            rx, tx = (c.rx_bytes, c.tx_bytes) if c else (0, 0)
            prev = self._last_counters.get(p.member)
            if prev is None or now - prev[0] >= 0.9:
                if prev and now > prev[0] and rx >= prev[1] and tx >= prev[2]:
                    dt = now - prev[0]
                    self._rates[p.member] = ((rx - prev[1]) / dt, (tx - prev[2]) / dt)
                self._last_counters[p.member] = (now, rx, tx)
            rx_rate, tx_rate = self._rates.get(p.member, (0.0, 0.0))
        health = peer_health(now=now, has_public_key=bool(p.public_key),
                             latest_handshake=c.latest_handshake if c else None,
                             configured_at=self._configured_at.get(p.public_key, now),
                             probes=stats)
        return PeerStatus(
            member=p.member, public_key=p.public_key,
            endpoint=c.endpoint if c and c.endpoint else (str(p.endpoint) if p.endpoint else ""),
            allowed_ips=tuple(str(s) for s in p.subnets),
            latest_handshake=c.latest_handshake if c else 0.0,
            rx_bytes=rx, tx_bytes=tx, rx_rate=rx_rate, tx_rate=tx_rate,
            rtt_last=stats.rtt_last, rtt_min=stats.rtt_min, rtt_avg=stats.rtt_avg,
            rtt_max=stats.rtt_max, loss=stats.loss, probes_sent=sent, probes_lost=lost,
            state=health.state, reason=health.reason, routed=p.member in self._installed)

    # --------------------------------------------------------------------- readers

    def status(self) -> GatewayStatus:
        with self._cond:
            return self._status

    def wait_change(self, version: int, timeout: float) -> tuple[int, GatewayStatus]:
        """Block until the significant status differs from *version* (or timeout)."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout)
            return self._version, self._status

