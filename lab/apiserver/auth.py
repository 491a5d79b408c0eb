"""Bearer-token authentication: the admin token and server-issued ServiceAccount tokens.

ServiceAccount tokens are JWT-shaped (header.payload.signature, HS256 over a per-cluster
signing key) so that anything holding the key — the server, or the lab kubelet in another
process reading the key file — can mint them offline, and the server can verify them
without a token table. As in Kubernetes, a token only authenticates while its
ServiceAccount exists (and, if the token names a uid, while the uid matches).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ISSUER = "https://wgslice-lab.invalid"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    """Who made a request (as Kubernetes' user.Info)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            d["uid"] = self.uid
        return d


def new_signing_key() -> bytes:
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(signing_key: bytes, namespace: str, name: str, uid: str = "",
               expiration_seconds: int | None = None, audiences: list[str] | None = None,
               pod: dict[str, str] | None = None) -> str:
    """A ServiceAccount token for system:serviceaccount:NAMESPACE:NAME.

    `pod` ({"name", "uid"}) binds it to a pod: it stops authenticating when that pod goes,
    like the TokenRequest tokens a kubelet mounts.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "sub": f"system:serviceaccount:{namespace}:{name}", "iat": now,
        "aud": audiences or ["https://kubernetes.default.svc"],
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        "jti": secrets.token_hex(8),
    }
    if pod:
        claims["kubernetes.io"]["pod"] = {"name": pod.get("name", ""), "uid": pod.get("uid", "")}
    if expiration_seconds:
        claims["exp"] = now + int(expiration_seconds)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(signing_key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def token_claims(signing_key: bytes, token: str) -> dict[str, Any] | None:
    """The verified claims of a minted token, or None (bad signature, malformed, expired)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    want = hmac.new(signing_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(parts[2])):
            return None
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, TypeError):
        return None
    if claims.get("exp") and claims["exp"] < time.time():
        return None
    return claims if isinstance(claims, dict) else None


def sa_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                     AUTHENTICATED), uid)


class Authenticator:
    """Maps a bearer token to a UserInfo, or None (401)."""

    def __init__(self, signing_key: bytes, admin_token: str,
                 sa_lookup: Callable[[str, str], dict[str, Any] | None],
                 static_tokens: dict[str, UserInfo] | None = None,
                 pod_lookup: Callable[[str, str], dict[str, Any] | None] | None = None) -> None:
        self.signing_key = signing_key
        self.sa_lookup = sa_lookup
        self.pod_lookup = pod_lookup
        self.static: dict[str, UserInfo] = dict(static_tokens or {})
        if admin_token:
            self.static[admin_token] = UserInfo("lab-admin", (MASTERS, AUTHENTICATED))

    def add_token(self, token: str, user: UserInfo) -> None:
        self.static[token] = user

    def authenticate(self, authorization: str | None) -> UserInfo | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        return self.user_for_token(authorization[7:].strip())

    def user_for_token(self, token: str) -> UserInfo | None:
        if token in self.static:
            return self.static[token]
        claims = token_claims(self.signing_key, token)
        if not claims:
            return None
        k8s = claims.get("kubernetes.io") or {}
        ns, sa = k8s.get("namespace", ""), (k8s.get("serviceaccount") or {})
        obj = self.sa_lookup(ns, sa.get("name", ""))
        if obj is None:
            return None
        uid = obj["metadata"].get("uid", "")
        if sa.get("uid") and sa["uid"] != uid:
            return None
        bound = k8s.get("pod")
        if bound and self.pod_lookup is not None:
            pod = self.pod_lookup(ns, bound.get("name", ""))
            if pod is None or (bound.get("uid") and pod["metadata"].get("uid") != bound["uid"]):
                return None
        return sa_user(ns, sa.get("name", ""), uid)
