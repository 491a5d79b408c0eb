"""WireGuard keys and where the gateway keeps its own.

The private key is generated *inside the member* on first start and lives only in a member
Secret (or, for tests and the lab, a 0600 file). Everything that could end up in a log, an
event, a status, a metric or a gRPC reply sees a `PrivateKey`, whose ``repr``/``str`` are
redacted; the raw value is reachable only through the explicit `PrivateKey.reveal_hex`
(used by the device adapter) and `PrivateKey.reveal_base64` (used by the key store).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from wireguard_tools.wireguard_key import WireguardKey

from wgslice.kube import Access, Conflict, Kube, KubeError, Rule, resources
from wgslice.kube.bodies import Secret

KEY_BYTES = 32
REDACTED = "<redacted>"


class KeyError_(ValueError):
    """A key that is not 32 bytes of base64."""


def parse_public_key(text: str) -> str:
    """Return *text* as canonical base64 if it is a WireGuard public key, else raise.

    Only the standard 44-character base64 form is accepted (what `wg pubkey` prints and
    what MemberSlice.status.publicKey carries), so typos are caught, not reinterpreted.
    """
    if not isinstance(text, str) or len(text) != 44 or not text.endswith("="):
        raise KeyError_(f"public key must be 44 characters of base64, got {text!r:.60}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyError_(f"public key is not valid base64: {text!r:.60}") from exc
    if len(raw) != KEY_BYTES:
        raise KeyError_(f"public key must decode to 32 bytes, got {len(raw)}")
    return base64.b64encode(raw).decode()


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A Curve25519 private key that never prints itself."""

    _raw: bytes

    def __post_init__(self) -> None:
        if len(self._raw) != KEY_BYTES:
            raise KeyError_("private key must be 32 bytes")

    @classmethod
    def generate(cls) -> PrivateKey:
        """A fresh, clamped key (same algorithm as `wg genkey`)."""
        return cls(WireguardKey.generate().keydata)

    @classmethod
    def from_base64(cls, text: str) -> PrivateKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise KeyError_("stored private key is not valid base64") from None
        return cls(raw)

    @property
    def public_key(self) -> str:
        """The public half, base64: the only form of this key that leaves the gateway."""
        return str(WireguardKey(self._raw).public_key())

    def reveal_hex(self) -> str:
        """Hex form for the WireGuard UAPI; call only when writing to the device."""
        return self._raw.hex()

    def reveal_base64(self) -> str:
        """Base64 form for the key store; call only when persisting."""
        return base64.b64encode(self._raw).decode()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"PrivateKey({REDACTED}, public_key={self.public_key!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("PrivateKey is not picklable (it would leave the process in clear)")


@runtime_checkable
class KeyStore(Protocol):
    """Where the gateway's private key survives restarts."""

    def load(self) -> PrivateKey | None:
        """The stored key, or None on first start."""
        ...

    def save(self, key: PrivateKey) -> None:
        """Persist *key*, replacing any previous one (rotation)."""
        ...

    def describe(self) -> str:
        """Where the key lives, for logs (never the key)."""
        ...


def load_or_create(store: KeyStore) -> tuple[PrivateKey, bool]:
    """The stored key, or a new one saved first (so a crash cannot lose the identity)."""
    key = store.load()
    if key is not None:
        return key, False
    key = PrivateKey.generate()
    store.save(key)
    return key, True


class FileKeyStore:
    """A 0600 file holding the base64 private key (tests, the lab, plain hosts)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> PrivateKey | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        return PrivateKey.from_base64(text)

    def save(self, key: PrivateKey) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".key-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (key.reveal_base64() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)  # atomic: a reader sees the old key or the new one

    def describe(self) -> str:
        return f"file {self.path}"


#: What the gateway asks of its member cluster: its own key Secret, read, made once, and
#: replaced when the key is rotated (the chart's wgslice-gateway Role is compared with this:
#: tests/charts/test_rbac_derived.py).
ACCESS = Access.of("wgslice-gateway", "wgslice-member", [
    Rule(resources.SECRETS, ("get", "create", "update")),
], why="loads, or creates once, its own private key Secret; replaces it on rotation")

FIELD_MANAGER = "wgslice-gateway"


class SecretKeyStore:
    """A Kubernetes Secret in the member cluster (`data.privateKey`, `data.publicKey`).

    Only the member's own gateway service account needs get/create/update on this one
    Secret; the hub never sees it. The public key is stored beside it for humans.

    `kube` defaults to the gateway's own (`Kube.connect` with field manager
    ``wgslice-gateway`` and `ACCESS`). An error from the API (`wgslice.kube.KubeError`)
    is re-raised as the same class with the key's every form cut out of its text and no
    chained cause or context, so neither a log line nor a traceback can carry the key, even when the
    API server (an admission webhook, a policy's message) quotes the object it refused.
    """

    FIELD = "privateKey"

    def __init__(self, namespace: str, name: str, kube: Kube | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self._kube = kube

    def _api(self) -> Kube:
        if self._kube is None:
            self._kube = Kube.connect(field_manager=FIELD_MANAGER, access=ACCESS)
        return self._kube

    def load(self) -> PrivateKey | None:
        refused: KubeError | None = None
        try:
            secret = self._api().find(resources.SECRETS, self.name, self.namespace)
        except KubeError as exc:
            refused = _scrubbed(exc, None)
        if refused is not None:  # raised out here: no __context__ to lead back to the answer
            raise refused
        if secret is None:
            return None
        data = secret.get("data") or {}
        if self.FIELD not in data:
            return None
        return PrivateKey.from_base64(base64.b64decode(data[self.FIELD]).decode())

    def save(self, key: PrivateKey) -> None:
        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        body: Secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/component": "gateway"},
                "annotations": {"wgslice.io/public-key": key.public_key},
            },
            "data": {self.FIELD: b64(key.reveal_base64()), "publicKey": b64(key.public_key)},
        }
        kube = self._api()
        refused: KubeError | None = None
        try:
            try:
                kube.create(resources.SECRETS, body)
            except Conflict:  # there is one already (a rotation): replace it
                kube.replace(resources.SECRETS, body)
        except KubeError as exc:
            refused = _scrubbed(exc, key)
        if refused is not None:  # raised out here: no __context__ to lead back to the body
            raise refused

    def describe(self) -> str:
        return f"secret {self.namespace}/{self.name}"


def _scrubbed(exc: KubeError, key: PrivateKey | None) -> KubeError:
    """*exc* again (same class, request, status and reason), its message without any form
    of *key* the API could quote (base64, hex, and the Secret's base64 of the base64); when
    the key is not known (a read), withheld whole if it names the Secret's private field (a
    garbled response whose start `Kube` quotes)."""
    forms: list[str] = []
    if key is not None:
        b64 = key.reveal_base64()
        inner = base64.b64encode(b64.encode()).decode()
        forms = [b64, b64.rstrip("="), inner, inner.rstrip("="), key.reveal_hex()]
    what, message = exc.what, exc.message
    for form in forms:
        what, message = what.replace(form, REDACTED), message.replace(form, REDACTED)
    if key is None and SecretKeyStore.FIELD in message:
        message = f"(the API's answer is withheld: it quotes the Secret's {REDACTED} data)"
    return type(exc)(what, message, status=exc.status, reason=exc.reason)
