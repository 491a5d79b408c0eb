"""SecretKeyStore against the lab's API server (a real HTTP API, kubernetes client)."""

from __future__ import annotations

import base64

import pytest

from wgslice.gateway.keys import PrivateKey, SecretKeyStore, load_or_create

serving = pytest.importorskip("wgslice.lab.apiserver.server").serving


def test_secret_store_against_the_lab_api_server(tmp_path):
    from kubernetes import client, config

    with serving(cluster_name="east") as st:
        kubeconfig = st.server.write_kubeconfig(tmp_path / "kubeconfig")
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        api.create_namespace({"metadata": {"name": "wgslice-system"}})
        store = SecretKeyStore("wgslice-system", "gateway-shop", api=api)
        assert store.load() is None
        key, created = load_or_create(store)
        assert created
        # A restart (a new store, a new client) finds the same identity.
        again = SecretKeyStore("wgslice-system", "gateway-shop", api=api)
        assert again.load() == key
        secret = api.read_namespaced_secret("gateway-shop", "wgslice-system")
        assert base64.b64decode(secret.data["publicKey"]).decode() == key.public_key
        assert secret.metadata.annotations["wgslice.io/public-key"] == key.public_key
        rotated = PrivateKey.generate()
        store.save(rotated)  # exists -> replace
        assert again.load() == rotated
