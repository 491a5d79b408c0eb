"""SecretKeyStore against a real kube-apiserver (kubernetes client)."""

from __future__ import annotations

import base64

from wgslice.gateway.keys import PrivateKey, SecretKeyStore, load_or_create


def test_secret_store_against_the_api_server(tmp_path, control_plane):
    from kubernetes import client, config

    st = control_plane("east")
    kubeconfig = st.write_kubeconfig(tmp_path / "kubeconfig")
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
