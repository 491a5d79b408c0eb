"""Prometheus metrics for one gateway.

A custom collector renders the current status snapshot at scrape time, so every series
exists exactly while its peer is configured: a removed peer's series disappear with it.
Labels are stable: ``slice``, ``cluster`` (local member), ``remote_cluster``.
"""

from __future__ import annotations

from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from wgslice.gateway.health import STATES
from wgslice.gateway.service import Gateway

PEER_LABELS = ["slice", "cluster", "remote_cluster"]


class GatewayCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        s = self.gateway.status()
        base = [s.slice, s.member]
        info = InfoMetricFamily("wgslice_gateway", "The gateway's identity and interface.",
                                labels=["slice", "cluster"])
        info.add_metric(base, {"interface": s.interface, "implementation": s.implementation,
                               "version": s.implementation_version,
                               "public_key": s.public_key, "listen_port": str(s.listen_port)})
        yield info
        mtu = GaugeMetricFamily("wgslice_gateway_mtu_bytes", "Interface MTU.",
                                labels=["slice", "cluster"])
        mtu.add_metric(base, s.mtu)
        yield mtu
        err = GaugeMetricFamily("wgslice_gateway_config_refused",
                                "1 while the latest desired config is refused.",
                                labels=["slice", "cluster"])
        err.add_metric(base, 1 if s.config_error else 0)
        yield err

        g = {name: GaugeMetricFamily(f"wgslice_gateway_peer_{name}", doc, labels=PEER_LABELS)
             for name, doc in (
                 ("up", "1 when the peer is connected or degraded."),
                 ("routed", "1 while the peer's subnets are routed through this interface "
                            "(0: no key yet, or withdrawn after lost probes)."),
                 ("latest_handshake_seconds", "UNIX time of the latest handshake (0 = never)."),
                 ("rtt_seconds", "Latest probe round-trip time."),
                 ("rtt_avg_seconds", "Average probe RTT over the window."),
                 ("loss_ratio", "Fraction of probes lost over the window."),
                 ("receive_bytes_per_second", "Receive rate."),
                 ("transmit_bytes_per_second", "Transmit rate."))}
        state = GaugeMetricFamily("wgslice_gateway_peer_state", "1 for the peer's state.",
                                  labels=[*PEER_LABELS, "state"])
        c = {name: CounterMetricFamily(f"wgslice_gateway_peer_{name}", doc, labels=PEER_LABELS)
             for name, doc in (("receive_bytes", "Bytes received from the peer."),
                               ("transmit_bytes", "Bytes sent to the peer."),
                               ("probes_sent", "Probes sent."),
                               ("probes_lost", "Probes unanswered."))}
        for p in s.peers:
            labels = [*base, p.member]
            g["up"].add_metric(labels, 1 if p.state in ("connected", "degraded") else 0)
            g["routed"].add_metric(labels, 1 if p.routed else 0)
            g["latest_handshake_seconds"].add_metric(labels, p.latest_handshake)
            if p.rtt_last is not None:
                g["rtt_seconds"].add_metric(labels, p.rtt_last / 1000)
            if p.rtt_avg is not None:
                g["rtt_avg_seconds"].add_metric(labels, p.rtt_avg / 1000)
            g["loss_ratio"].add_metric(labels, p.loss)
            g["receive_bytes_per_second"].add_metric(labels, p.rx_rate)
            g["transmit_bytes_per_second"].add_metric(labels, p.tx_rate)
            for st in STATES:
                state.add_metric([*labels, st], 1 if p.state == st else 0)
            c["receive_bytes"].add_metric(labels, p.rx_bytes)
            c["transmit_bytes"].add_metric(labels, p.tx_bytes)
            c["probes_sent"].add_metric(labels, p.probes_sent)
            c["probes_lost"].add_metric(labels, p.probes_lost)
        yield from g.values()
        yield state
        yield from c.values()


def registry_for(gateway: Gateway) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(GatewayCollector(gateway))
    return registry


def serve_metrics(gateway: Gateway, port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Start the HTTP exporter in a thread; returns the server (``.shutdown()`` stops it)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry_for(gateway))
    return server
