"""Key handling: redaction everywhere, file store, Secret store against a fake API server
(behind the real `wgslice.kube.Kube`), and refused or garbled answers that never quote the
key."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import stat
import traceback
from types import SimpleNamespace

import pytest

from wgslice.gateway.keys import (
    ACCESS,
    FileKeyStore,
    KeyError_,
    PrivateKey,
    SecretKeyStore,
    load_or_create,
    parse_public_key,
)
from wgslice.kube import Forbidden, Invalid, Kube, KubeError


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


class FakeApi:
    """The two `ApiClient` calls `wgslice.kube.Kube` makes, serving Secrets from a dict
    with the API server's status codes; `refuse` answers a write with that status and a
    message quoting the request body, as an echoing admission webhook might."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict] = {}
        self.refuse: tuple[int, str] | None = None

    def param_serialize(self, method, path, query_params=None, header_params=None,
                        body=None, auth_settings=None):
        return method, path, header_params, body, None

    def call_api(self, method, path, headers, body, post_params, _request_timeout=None):
        parts = path.split("/")  # /api/v1/namespaces/NS/secrets[/NAME]
        ns, name = parts[4], (parts[6] if len(parts) > 6 else body["metadata"]["name"])
        if self.refuse and method in ("POST", "PUT"):
            status, reason = self.refuse
            return Response(status, {"kind": "Status", "reason": reason,
                                     "message": f"denied by policy: {json.dumps(body)}"})
        if method == "GET":
            found = self.secrets.get((ns, name))
            return Response(200, found) if found else Response(
                404, {"reason": "NotFound", "message": f'secrets "{name}" not found'})
        if method == "POST" and (ns, name) in self.secrets:
            return Response(409, {"reason": "AlreadyExists",
                                  "message": f'secrets "{name}" already exists'})
        self.secrets[(ns, name)] = body
        return Response(201 if method == "POST" else 200, body)


class Response:
    def __init__(self, status: int, body: dict) -> None:
        self.status, self.reason, self._data = status, "", json.dumps(body).encode()

    def read(self) -> bytes:
        return self._data


def fake_kube(api: FakeApi) -> Kube:
    return Kube(api, field_manager="wgslice-gateway", access=ACCESS)


def test_secret_store_round_trip_and_rotation():
    core = FakeApi()
    kube = fake_kube(core)
    store = SecretKeyStore("wgslice-system", "gw-shop", kube=kube)
    assert store.load() is None
    key, created = load_or_create(store)
    assert created and store.load() == key
    body = core.secrets[("wgslice-system", "gw-shop")]
    assert body["metadata"]["annotations"]["wgslice.io/public-key"] == key.public_key
    rotated = PrivateKey.generate()
    store.save(rotated)  # 409 -> replace
    assert store.load() == rotated and store.describe() == "secret wgslice-system/gw-shop"
    assert kube.calls == set(ACCESS.grants)  # what it declares, all of it used


def key_forms(key: PrivateKey) -> list[str]:
    b64 = key.reveal_base64()
    return [b64, b64.rstrip("="), key.reveal_hex(), base64.b64encode(b64.encode()).decode()]


def leaks(exc: BaseException, key: PrivateKey) -> list[str]:
    """Every text a log line or a traceback could show of *exc*, that holds the key."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)),
             str(vars(exc))]
    return [t for t in texts for form in key_forms(key) if form in t]


@pytest.mark.parametrize("status,reason,cls", [
    (403, "Forbidden", Forbidden), (422, "Invalid", Invalid), (500, "InternalError", KubeError),
])
def test_a_refused_save_never_quotes_the_key(status, reason, cls, caplog):
    api = FakeApi()
    api.refuse = (status, reason)
    store = SecretKeyStore("wgslice-system", "gw-shop", kube=fake_kube(api))
    key = PrivateKey.generate()
    with caplog.at_level(logging.DEBUG), pytest.raises(cls) as info:
        store.save(key)
    exc = info.value
    logging.getLogger("test").exception("save failed: %s", exc, exc_info=exc)
    assert not leaks(exc, key) and not [f for f in key_forms(key) if f in caplog.text]
    # still says what was refused, by whom, and why
    assert exc.what == "create Secret wgslice-system/gw-shop" and exc.status == status
    assert exc.reason == reason and "denied by policy" in exc.message
    assert "<redacted>" in exc.message and exc.__cause__ is None and exc.__context__ is None
    assert key.public_key in exc.message  # the public half is fine to show


def test_a_garbled_read_never_quotes_the_secret():
    api = FakeApi()
    store = SecretKeyStore("wgslice-system", "gw-shop", kube=fake_kube(api))
    key = PrivateKey.generate()
    store.save(key)
    stored = api.secrets[("wgslice-system", "gw-shop")]
    garbled = json.dumps({"data": stored["data"], **stored}).encode()[:-1]  # cut short
    api.call_api = lambda *a, **k: SimpleNamespace(status=200, reason="", read=lambda: garbled)
    with pytest.raises(KubeError) as info:
        store.load()
    assert not leaks(info.value, key) and "privateKey" not in str(info.value)
    assert info.value.what == "get Secret wgslice-system/gw-shop"
