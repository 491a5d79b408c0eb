"""The hub slice controller: kopf watches wake one reconcile loop; a Lease picks the writer.

kopf does what it is best at, here: watching the four wgslice resources with backoff,
reconnects and bookmarks, and waking the loop on any change. Every decision is made by the
pure `reconcile` over a fresh snapshot, so a missed or duplicated event costs nothing: the
loop also resyncs every `resync` seconds. Only the Lease holder writes (two replicas run).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import kopf

from wgslice.slice.reconcile import reconcile
from wgslice.slice.specs import GROUP, VERSION

log = logging.getLogger("wgslice.hub")

WATCHED = ("slices", "memberclusters", "overlaypools", "memberslices")


@dataclass
class ControllerConfig:
    namespace: str = "wgslice-system"  # where the leader Lease lives
    identity: str = ""
    lease_name: str = "wgslice-hub-controller"
    lease_seconds: int = 15
    renew_seconds: float = 2.0
    resync_seconds: float = 10.0
    debounce_seconds: float = 0.05
    #: Namespaces that never join a slice besides kube-* and wgslice-* (docs/api.md).
    system_namespaces: tuple[str, ...] = ()


def build_registry(wake: asyncio.Event) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    for plural in WATCHED:

        def on_event(**_: Any) -> None:
            wake.set()

        kopf.on.event(GROUP, VERSION, plural, registry=registry, id=f"wake-on-{plural}")(on_event)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        # Same credentials as the kubernetes client: in-cluster token or KUBECONFIG.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True  # leadership is the Lease's job (slice/leader.py)
        settings.posting.enabled = False  # the controller writes its own, meaningful Events
        settings.watching.server_timeout = 120
        settings.watching.client_timeout = 150

    return registry


async def run(cfg: ControllerConfig, stop: asyncio.Event | None = None) -> None:
    """Runs the controller until `stop` is set (or forever)."""
    from wgslice.slice.hubapi import HubApi
    from wgslice.slice.leader import LeaderElector

    stop = stop or asyncio.Event()
    wake = asyncio.Event()
    # One Kube (in-cluster ServiceAccount or KUBECONFIG, as kopf's login) for the snapshot,
    # the writes and the Lease; kopf keeps its own client for its watches.
    hub = HubApi.connect()
    elector = LeaderElector(
        hub.kube,
        cfg.namespace,
        cfg.lease_name,
        cfg.identity or _identity(),
        cfg.lease_seconds,
    )

    async def elect() -> None:
        while not stop.is_set():
            was = elector.is_leader
            try:
                await asyncio.to_thread(elector.try_acquire_or_renew)
            except Exception:  # the API is down: keep trying, do not crash the pod
                log.exception("leader election round failed")
                elector.is_leader = False
            if elector.is_leader and not was:
                wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), cfg.renew_seconds)

    async def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), cfg.resync_seconds)
            await asyncio.sleep(cfg.debounce_seconds)  # let a burst of events settle
            wake.clear()
            if not elector.is_leader or stop.is_set():
                continue
            try:
                snap = await asyncio.to_thread(hub.snapshot)
                actions = reconcile(snap, _now(), system_namespaces=cfg.system_namespaces)
                if not actions.empty():
                    failures = await asyncio.to_thread(hub.execute, snap, actions)
                    log.info(
                        "reconciled: %d MemberSlice writes, %d deletes, %d statuses, %d failed",
                        len(actions.apply),
                        len(actions.delete),
                        len(actions.status),
                        failures,
                    )
                    wake.set()  # re-read what we wrote; converges in a round or two
            except Exception:
                log.exception("reconcile round failed; retrying")
                await asyncio.sleep(1.0)

    registry = build_registry(wake)
    operator = asyncio.create_task(
        kopf.operator(registry=registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    helpers = [asyncio.create_task(elect()), asyncio.create_task(loop())]
    stopped = asyncio.create_task(stop.wait())
    try:
        # kopf installs its own SIGTERM/SIGINT handlers and ends the operator task on them;
        # either that or `stop` ends the whole controller.
        await asyncio.wait({operator, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        await asyncio.gather(operator, stopped, *helpers, return_exceptions=True)


def _identity() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
