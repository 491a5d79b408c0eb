"""Fixtures: a lab API server in a thread, clients for it, and a namespace per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from labapi_helpers import Raw, start

from wgslice.lab.apiserver import ServerThread


@pytest.fixture(scope="session")
def lab() -> Iterator[ServerThread]:
    st = start(cluster_name="conformance")
    yield st
    st.stop()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="wgslice-labapi-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def kubeconfig(lab: ServerThread, workdir: Path) -> Path:
    return lab.server.write_kubeconfig(workdir / "admin.kubeconfig")


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    c = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    yield c
    c.close()


@pytest.fixture()
def raw(lab: ServerThread) -> Raw:
    return Raw(lab.server)


@pytest.fixture()
def ns(raw: Raw) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    status, _ = raw("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201
    yield name
    raw("DELETE", f"/api/v1/namespaces/{name}")
