"""Which wireguard-go the gateway runs: explicit, $WGSLICE_WIREGUARD_GO, the upstream cache,
PATH; the version it reports; a clear error when there is none (no root, fake binaries)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wgslice.gateway.device import DeviceError, find_wireguard_go, parse_version


def fake(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'wireguard-go {version}'\necho\necho 'Userspace ...'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def world(tmp_path):
    new = fake(tmp_path / "cache" / "wireguard-go-vX" / "wireguard-go", "v0.0.20250522")
    (tmp_path / "cache" / "bin").mkdir()
    os.symlink(new, tmp_path / "cache" / "bin" / "wireguard-go")
    old = fake(tmp_path / "usr" / "bin" / "wireguard-go", "v0.0.20220316")
    env = {"WGSLICE_UPSTREAM": str(tmp_path / "cache"), "PATH": str(old.parent)}
    return tmp_path, new, old, env


def test_upstream_cache_before_path(world):
    _, new, _, env = world
    b = find_wireguard_go(env=env)
    assert (b.path, b.source, b.version) == (str(new), "upstream cache", "v0.0.20250522")
    assert b.fast
    assert "v0.0.20250522" in b.describe()


def test_path_when_no_cache_and_old_is_not_fast(world, tmp_path):
    _, _, old, env = world
    env["WGSLICE_UPSTREAM"] = str(tmp_path / "nothing")
    b = find_wireguard_go(env=env)
    assert (b.path, b.source, b.version, b.fast) == (str(old), "PATH", "v0.0.20220316", False)


def test_explicit_and_env_win(world, tmp_path):
    _, _, old, env = world
    other = fake(tmp_path / "other" / "wg", "v0.0.20260101")
    assert find_wireguard_go(str(other), env=env).source == "--wireguard-go"
    env["WGSLICE_WIREGUARD_GO"] = str(old)
    b = find_wireguard_go(env=env)
    assert (b.path, b.source) == (str(old), "$WGSLICE_WIREGUARD_GO")
    assert find_wireguard_go(str(other), env=env).path == str(other)


def test_explicit_missing_is_an_error_not_a_fallback(world, tmp_path):
    _, _, _, env = world
    env["WGSLICE_WIREGUARD_GO"] = str(tmp_path / "missing")
    with pytest.raises(DeviceError, match=r"WGSLICE_WIREGUARD_GO.*not an executable"):
        find_wireguard_go(env=env)


def test_none_found_says_what_was_tried(tmp_path):
    env = {"WGSLICE_UPSTREAM": str(tmp_path), "PATH": str(tmp_path / "empty")}
    with pytest.raises(DeviceError) as exc:
        find_wireguard_go(env=env)
    assert str(tmp_path / "bin" / "wireguard-go") in str(exc.value)
    assert "build-upstream.sh wireguard-go" in str(exc.value)


def test_unknown_version_is_not_fast(tmp_path):
    b = find_wireguard_go(str(fake(tmp_path / "wg", "")), env={})
    assert b.version == "" and not b.fast


@pytest.mark.parametrize(("text", "want"), [
    ("wireguard-go v0.0.20250522", (0, 0, 20250522)), ("v0.0.20220316", (0, 0, 20220316)),
    ("", None)])
def test_parse_version(text, want):
    assert parse_version(text) == want
