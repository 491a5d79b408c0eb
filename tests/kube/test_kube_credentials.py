"""Where `Kube.connect` finds credentials, and what it says when there are none: the CLI and
the dashboard turn `NoCredentials` into a message naming the flag to pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from wgslice.errors import UserError
from wgslice.kube import Kube, NoCredentials, kubeconfig_contexts
from wgslice.slice.inspect.hub import api_client

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: hub
  cluster: {server: "https://127.0.0.1:1"}
- name: c1
  cluster: {server: "https://127.0.0.1:2"}
users:
- name: admin
  user: {token: not-a-secret}
contexts:
- name: hub
  context: {cluster: hub, user: admin}
- name: c1
  context: {cluster: c1, user: admin}
current-context: c1
"""


@pytest.fixture
def outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)


def test_a_missing_kubeconfig_is_named(outside_a_pod: None, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(NoCredentials) as err:
        Kube.connect(field_manager="t", kubeconfig=str(missing))
    assert str(missing) in str(err.value)
    with pytest.raises(UserError) as user:
        api_client(str(missing))
    assert str(missing) in str(user.value) and "--kubeconfig" in str(user.value)


def test_an_unknown_context_is_named(outside_a_pod: None, tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(KUBECONFIG)
    with pytest.raises(NoCredentials) as err:
        Kube.connect(field_manager="t", kubeconfig=str(cfg), context="c9")
    assert "c9" in str(err.value)


def test_in_cluster_only_refuses_outside_a_pod(outside_a_pod: None) -> None:
    with pytest.raises(NoCredentials) as err:
        Kube.connect(field_manager="t", in_cluster=True)
    assert "in-cluster" in str(err.value)


def test_a_kubeconfig_context_is_used(outside_a_pod: None, tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(KUBECONFIG)
    kube = Kube.connect(field_manager="t", kubeconfig=str(cfg), context="hub")
    assert kube.api.configuration.host == "https://127.0.0.1:1"
    assert kube.field_manager == "t"


def test_contexts_lists_names_and_the_current_one(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(KUBECONFIG)
    assert kubeconfig_contexts(str(cfg)) == (["hub", "c1"], "c1")
    assert kubeconfig_contexts(str(tmp_path / "nope")) == ([], None)
