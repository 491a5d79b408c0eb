"""Reading the hub: one `Snapshot` per call, through `wgslice.kube.Kube`.

Only wgslice objects and Events are read (list: `slice.rbac.DASHBOARD` declares it for
the dashboard); never a Secret. The CLI reads with the user's own credentials.
"""

from __future__ import annotations

from wgslice.errors import UserError
from wgslice.kube import Access, Kube, KubeError, NoCredentials, kubeconfig_contexts
from wgslice.kube import bodies as b
from wgslice.kube import resources as r
from wgslice.slice.dashboard.hubview import Snapshot

EVENTS_NAMESPACE = "default"
FIELD_MANAGER = "wgslice"  # the CLI's (it writes only in `verify`, its probe objects)
TIMEOUT = 10.0


def api_client(kubeconfig: str | None = None, context: str | None = None, *,
               access: Access | None = None, field_manager: str = FIELD_MANAGER) -> Kube:
    """A `Kube` for the hub context (default: the kubeconfig's current context), with the
    user's credentials; `access` narrows it (the dashboard's declared reads)."""
    try:
        return Kube.connect(field_manager=field_manager, access=access, kubeconfig=kubeconfig,
                            context=context, in_cluster=False, timeout=TIMEOUT)
    except NoCredentials as exc:
        raise UserError(f"cannot use {exc}; pass --kubeconfig/--context") from None


def contexts(kubeconfig: str | None = None) -> tuple[list[str], str | None]:
    """The kubeconfig's context names and its current one (the dashboard's picker)."""
    return kubeconfig_contexts(kubeconfig)


def read_snapshot(kube: Kube, events: bool = True) -> Snapshot:
    """Lists Slices, MemberClusters, OverlayPools, MemberSlices and Slice Events."""
    evs: list[b.Event] = []
    if events:
        try:
            evs = [e for e in kube.list(r.EVENTS, EVENTS_NAMESPACE)
                   if (e.get("involvedObject") or {}).get("kind") == "Slice"]
        except KubeError:  # events are a nicety: no RBAC for them must not break the page
            evs = []
    slices = kube.list(r.SLICES)
    members = kube.list(r.MEMBERCLUSTERS)
    pools = kube.list(r.OVERLAYPOOLS)
    member_slices = kube.list(r.MEMBERSLICES)
    return Snapshot(slices=slices, members=members, pools=pools, member_slices=member_slices,
                    events=evs)
