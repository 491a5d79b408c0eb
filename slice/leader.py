"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it.

Two hub controller replicas run; only the holder of the Lease writes. A candidate takes a
Lease that is absent or whose holder has not renewed it within `lease_seconds`; the
holder renews every `renew_seconds`. Every write carries the resourceVersion it read, so
two candidates racing for an expired Lease cannot both win (one gets 409).

Why not kopf's peering: it freezes kopf handlers, but the controller's work happens in one
reconcile loop that kopf handlers only wake up; a Lease is also what `kubectl get lease`
users already know how to read.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from wgslice.kube import Kube, KubeError, NotFound
from wgslice.kube import bodies as b
from wgslice.kube import resources as r

log = logging.getLogger("wgslice.leader")


@dataclass
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    is_leader: bool = False

    def try_acquire_or_renew(self) -> bool:
        """One election round (blocking; call from a thread). Returns leadership now."""
        now = datetime.datetime.now(datetime.UTC)
        stamp = _micro_time(now)
        try:
            lease = self.kube.get(r.LEASES, self.name, self.namespace)
        except NotFound:
            body: b.Lease = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": self.lease_seconds,
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 0,
                },
            }
            try:
                self.kube.create(r.LEASES, body)
                return self._set(True, "created the lease")
            except KubeError as exc:
                return self._set(False, f"lost the race to create the lease: {exc}")
        except KubeError as exc:
            return self._set(False, f"cannot read lease: {exc}")
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or self.lease_seconds
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder != self.identity and not expired:
            return self._set(False, f"held by {holder}")
        if holder != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["renewTime"] = stamp
        spec["leaseDurationSeconds"] = self.lease_seconds
        lease["spec"] = spec
        try:
            # PUT with the resourceVersion read: a racing candidate's write makes this a
            # Conflict, so two candidates never both win an expired Lease
            self.kube.replace(r.LEASES, lease)
        except KubeError as exc:
            return self._set(False, f"lease write refused: {exc}")
        return self._set(True, "renewed" if holder == self.identity else f"took over from {holder}")

    def _set(self, leader: bool, why: str) -> bool:
        if leader != self.is_leader:
            log.info(
                "%s leadership of lease %s/%s: %s",
                "gained" if leader else "lost",
                self.namespace,
                self.name,
                why,
            )
        self.is_leader = leader
        return leader


def _micro_time(t: datetime.datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, as client-go writes it."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
