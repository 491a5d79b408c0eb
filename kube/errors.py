"""The errors of wgslice's one door to Kubernetes (`wgslice.kube.Kube`).

Why our own hierarchy: callers decide on *what happened* (the object is not there, someone
else changed it first, we may not, the API is unreachable), never on a client library's
exception class or an HTTP status read out of it. Each error names the request in the
user's words ("patch Deployment wgslice-system/wgslice-gw-blue") and carries the API
server's own message, so a log line or a status condition says what to do.
"""

from __future__ import annotations


class KubeError(Exception):
    """A request the API server refused, or could not be asked.

    `status` is the HTTP status (0 when the server was not reached), `reason` the API's
    machine-readable reason (``NotFound``, ``Conflict``, ``Forbidden``, ``Invalid``...),
    `what` the request ("get Pod default/web-0").
    """

    status: int = 0

    def __init__(self, what: str, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(f"{what}: {message}" if message else what)
        self.what = what
        self.message = message
        self.reason = reason
        if status:
            self.status = status


class NotFound(KubeError):
    """404: the object (or its namespace, or its kind) does not exist."""

    status = 404


class Conflict(KubeError):
    """409: already exists, or changed since it was read (a stale resourceVersion), or an
    apply conflict. Level-triggered callers re-read and decide again."""

    status = 409


class Forbidden(KubeError):
    """403: RBAC (or an admission plugin) refused the request: a chart or credential
    problem, never retried blindly."""

    status = 403


class Invalid(KubeError):
    """422: the object breaks the API's schema or a CEL rule; the message names the field."""

    status = 422


class Gone(KubeError):
    """410: a watch's resourceVersion is too old; list again."""

    status = 410


class Unreachable(KubeError):
    """The API server could not be reached or did not answer (connection refused, TLS,
    timeout, 5xx): an outage, not a verdict about the request."""


class NoCredentials(KubeError):
    """No usable credentials: no ServiceAccount token in a pod, or a kubeconfig that is
    missing, unreadable or lacks the context asked for. `what` says where it looked."""


class UndeclaredAccess(Exception):
    """A component called the API beyond the access it declares (`wgslice.kube.access`).

    A programming error, raised before anything is sent: the declaration is what the charts'
    RBAC is checked against, so a call outside it would be refused in a real cluster.
    """


_BY_STATUS: dict[int, type[KubeError]] = {
    404: NotFound, 409: Conflict, 403: Forbidden, 422: Invalid, 410: Gone,
}


def from_status(what: str, status: int, message: str, reason: str = "") -> KubeError:
    """The error for an HTTP status; no answer, 429, 502, 503 and 504 are Unreachable (try
    again later). Other 5xx carry the server's verdict (an apply the schema cannot type is a
    500 with a message naming the field) and stay plain KubeErrors."""
    if status in (0, 429, 502, 503, 504):
        return Unreachable(what, message, status=status, reason=reason)
    return _BY_STATUS.get(status, KubeError)(what, message, status=status, reason=reason)
