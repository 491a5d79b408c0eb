"""Key handling: redaction everywhere, file store, Secret store against a fake API."""

from __future__ import annotations

import base64
import logging
import pickle
import stat
from types import SimpleNamespace

import pytest

from wgslice.gateway.keys import (
    FileKeyStore,
    KeyError_,
    PrivateKey,
    SecretKeyStore,
    load_or_create,
    parse_public_key,
)


def test_private_key_never_prints_itself(caplog):
    key = PrivateKey.generate()
    secret_b64, secret_hex = key.reveal_base64(), key.reveal_hex()
    texts = [repr(key), str(key), f"{key}", f"{key!r}", format(key), str([key]), str({"k": key})]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("key %s %r", key, key)
    texts.append(caplog.text)
    for text in texts:
        assert secret_b64 not in text and secret_hex not in text
        assert "redacted" in text
    assert key.public_key in repr(key)  # the public half is fine to show
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_public_key_matches_wireguard_derivation():
    # RFC 7748 test vector (Alice), as `wg pubkey` computes it.
    priv = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    pub = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert PrivateKey(priv).public_key == base64.b64encode(pub).decode()


def test_parse_public_key():
    pub = PrivateKey.generate().public_key
    assert parse_public_key(pub) == pub
    for bad in ("", "abc", pub[:-1], pub[:-2] + "!=", 44 * "A"):
        with pytest.raises(KeyError_):
            parse_public_key(bad)


def test_file_store_creates_0600_and_keeps_identity(tmp_path):
    store = FileKeyStore(tmp_path / "sub" / "key")
    key, created = load_or_create(store)
    assert created
    assert stat.S_IMODE((tmp_path / "sub" / "key").stat().st_mode) == 0o600
    again, created = load_or_create(FileKeyStore(tmp_path / "sub" / "key"))
    assert not created and again == key and again.public_key == key.public_key
    assert str(tmp_path) in store.describe() and key.reveal_base64() not in store.describe()


class FakeCore:
    """The three CoreV1Api calls SecretKeyStore uses, with API-server status codes."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict] = {}

    def _exc(self, status):
        from kubernetes.client.exceptions import ApiException

        return ApiException(status=status)

    def read_namespaced_secret(self, name, namespace):
        body = self.secrets.get((namespace, name))
        if body is None:
            raise self._exc(404)
        return SimpleNamespace(data=body["data"])

    def create_namespaced_secret(self, namespace, body):
        key = (namespace, body["metadata"]["name"])
        if key in self.secrets:
            raise self._exc(409)
        self.secrets[key] = body

    def replace_namespaced_secret(self, name, namespace, body):
        self.secrets[(namespace, name)] = body


def test_secret_store_round_trip_and_rotation():
    core = FakeCore()
    store = SecretKeyStore("wgslice-system", "gw-shop", api=core)
    assert store.load() is None
    key, created = load_or_create(store)
    assert created and store.load() == key
    body = core.secrets[("wgslice-system", "gw-shop")]
    assert body["metadata"]["annotations"]["wgslice.io/public-key"] == key.public_key
    rotated = PrivateKey.generate()
    store.save(rotated)  # 409 -> replace
    assert store.load() == rotated and store.describe() == "secret wgslice-system/gw-shop"
