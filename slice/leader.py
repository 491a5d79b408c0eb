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

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger("wgslice.leader")


@dataclass
class LeaderElector:
    api: client.CoordinationV1Api
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    is_leader: bool = False

    def try_acquire_or_renew(self) -> bool:
        """One election round (blocking; call from a thread). Returns leadership now."""
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                return self._set(False, f"cannot read lease: {exc.status}")
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.lease_seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body)
                return self._set(True, "created the lease")
            except ApiException as exc2:
                return self._set(False, f"lost the race to create the lease: {exc2.status}")
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity
        renewed = spec.renew_time
        duration = spec.lease_duration_seconds or self.lease_seconds
        expired = renewed is None or (now - renewed).total_seconds() > duration
        if holder != self.identity and not expired:
            return self._set(False, f"held by {holder}")
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        lease.spec = spec
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            return self._set(False, f"lease write refused: {exc.status}")
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
