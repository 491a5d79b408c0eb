"""Looking for gateway private keys where they must not be (issue 14, item 3, last fault).

A leak rarely keeps the form the key is stored in: a log line may carry the hex the device
adapter writes to the WireGuard UAPI, a status the base64 text, a Secret dump the base64 of
that text, a protobuf reply the raw 32 bytes. So every key is searched in all of them:

- ``b64``: standard base64 of the 32 bytes (what `wg genkey` prints), and without padding;
- ``b64url``: the URL-safe alphabet (what a JWT-like encoder would print), without padding;
- ``hex`` and ``HEX``: the UAPI's form, lower and upper case;
- ``secret``: the base64 of the base64 text, as `data.privateKey` of the member Secret;
- ``raw``: the 32 bytes themselves (binary sources: protobuf replies, files read as bytes).

`find_leaks` returns one line per (source, key, form) found; the tests fail on any.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KEY_BYTES = 32


@dataclass(frozen=True)
class Key:
    """One gateway's private key, named by where it came from (for the failure message
    only: the message never prints the key itself)."""

    owner: str
    raw: bytes

    def forms(self) -> dict[str, bytes]:
        std = base64.b64encode(self.raw)
        return {
            "b64": std,
            "b64-unpadded": std.rstrip(b"="),
            "b64url": base64.urlsafe_b64encode(self.raw).rstrip(b"="),
            "hex": self.raw.hex().encode(),
            "HEX": self.raw.hex().upper().encode(),
            "secret": base64.b64encode(std),
            "raw": self.raw,
        }


def key_from_secret(owner: str, data: Mapping[str, str], field: str = "privateKey") -> Key:
    """The key in a Secret's `data` (base64 of the base64 text); ValueError if it is not
    32 bytes, so a changed Secret layout fails the test instead of searching for nothing."""
    text = base64.b64decode(data[field], validate=True)
    raw = base64.b64decode(text.strip(), validate=True)
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{owner}: {field} is {len(raw)} bytes, not {KEY_BYTES}")
    return Key(owner, raw)


def find_leaks(keys: Iterable[Key], sources: Mapping[str, bytes]) -> list[str]:
    """Every (source, key owner, form) where a form of a key occurs in a source."""
    keys = list(keys)
    out = []
    for name, blob in sources.items():
        for key in keys:
            for form, needle in key.forms().items():
                if needle in blob:
                    out.append(f"{name}: private key of {key.owner} ({form})")
    return out
