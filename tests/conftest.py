"""Fixtures shared by the integration tests: a real Kubernetes control plane.

`control_plane` starts the upstream etcd + kube-apiserver (+ kube-controller-manager) that
`scripts/build-upstream.sh` built, on free loopback ports, and stops it after the test
(`wgslice.lab.standalone`). About 3 s per start on two cores; tests that can share one
take the module-scoped `shared_control_plane`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wgslice.lab.standalone import ControlPlane

MakeControlPlane = Callable[..., ControlPlane]


def _factory(root: Path) -> tuple[MakeControlPlane, list[ControlPlane]]:
    made: list[ControlPlane] = []

    def make(name: str = "test", controller_manager: bool = True) -> ControlPlane:
        cp = ControlPlane(root / f"cp-{name}-{len(made)}", name,
                          controller_manager=controller_manager)
        made.append(cp)
        return cp.start()

    return make, made


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[MakeControlPlane]:
    """A factory: ``control_plane("hub")`` starts a fresh control plane named ``hub``."""
    make, made = _factory(tmp_path)
    try:
        yield make
    finally:
        for cp in made:
            cp.stop()


@pytest.fixture(scope="module")
def module_control_plane(tmp_path_factory: pytest.TempPathFactory
                         ) -> Iterator[MakeControlPlane]:
    """Like `control_plane`, shared by the tests of one module."""
    make, made = _factory(tmp_path_factory.mktemp("cp"))
    try:
        yield make
    finally:
        for cp in made:
            cp.stop()
