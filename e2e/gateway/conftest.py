"""Fixtures for the gateway's root tests: a three-gateway mesh in `wgsgw-*` namespaces."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gw_netlab import Lab
from gw_netlab import skip_reason as _skip_reason


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    """Three gateways (m1..m3) in a full mesh, pods behind m1 and m2; torn down always."""
    reason = _skip_reason()
    if reason:
        # CI runs as root with every tool setup.sh installs: a skip there would hide
        # the whole suite, so it fails instead.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    lab = Lab(f"t{os.getpid() % 100000}", tmp_path_factory.mktemp("wgsgw"), count=3,
              pods=(1, 2))
    try:
        lab.build()
        for n in (1, 2, 3):
            lab.start(n)
        yield lab
    finally:
        lab.close()
