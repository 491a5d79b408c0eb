"""The private-key grep of the fault suite (tests/faults/keygrep.py) can fail: a key planted
in each form, in each kind of source, is found; a source without it is clean. Without this,
a grep that searched for the wrong bytes would pass the lab test forever."""

from __future__ import annotations

import base64
import json

import pytest
from keygrep import Key, find_leaks, key_from_secret

from wgslice.gateway.keys import PrivateKey, SecretKeyStore


def _key() -> tuple[PrivateKey, Key]:
    private = PrivateKey.generate()
    return private, Key("c1/demo", base64.b64decode(private.reveal_base64()))


def _secret_data(private: PrivateKey) -> dict[str, str]:
    """What the member agent writes (slice/member/executor.py `_create_key`)."""
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {SecretKeyStore.FIELD: b64(private.reveal_base64()),
            "publicKey": b64(private.public_key)}


def test_key_read_from_the_member_secret_is_the_gateways_key() -> None:
    private, key = _key()
    assert key_from_secret("c1/demo", _secret_data(private)) == key
    with pytest.raises(ValueError):
        key_from_secret("x", {"privateKey": base64.b64encode(b"short").decode()})


@pytest.mark.parametrize("form", ["b64", "b64-unpadded", "b64url", "hex", "HEX", "secret",
                                  "raw"])
def test_a_planted_key_is_found_in_every_form(form: str) -> None:
    _private, key = _key()
    needle = key.forms()[form]
    log = b"2026-12-05 gateway c1/demo: applying config ... " + needle + b" done\n"
    status = json.dumps({"status": {"note": needle.decode("latin-1")}}).encode("latin-1")
    found = find_leaks([key], {"log": log, "hub object": status, "clean": b"nothing here"})
    assert f"log: private key of c1/demo ({form})" in found
    assert f"hub object: private key of c1/demo ({form})" in found or form == "raw"
    assert not [f for f in found if f.startswith("clean:")]


def test_public_key_and_redacted_forms_are_not_leaks() -> None:
    """What the product legitimately publishes (the public key, the redacted repr) must not
    count, or the lab test would fail on every healthy status."""
    private, key = _key()
    text = f"{private.public_key} {private!r} {private}".encode()
    assert find_leaks([key], {"status": text}) == []
