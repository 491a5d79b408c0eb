"""SecretKeyStore against a real kube-apiserver, through the gateway's own `Kube` (its
declared access only), and refused saves that never quote the key."""

from __future__ import annotations

import base64
import time
import traceback

import pytest

from wgslice.gateway.keys import ACCESS, PrivateKey, SecretKeyStore, load_or_create
from wgslice.kube import Invalid, Kube, KubeError, NotFound
from wgslice.kube import resources as r
from wgslice.kube.resources import Resource

#: not a kind wgslice uses: only this test makes one
POLICIES: Resource[dict] = Resource("admissionregistration.k8s.io", "v1",
                                    "validatingadmissionpolicies",
                                    "ValidatingAdmissionPolicy", False)
BINDINGS: Resource[dict] = Resource("admissionregistration.k8s.io", "v1",
                                    "validatingadmissionpolicybindings",
                                    "ValidatingAdmissionPolicyBinding", False)


def kubes(tmp_path, control_plane) -> tuple[Kube, Kube]:
    """(an admin for the test's own setup, the gateway's door)"""
    st = control_plane("east")
    kubeconfig = str(st.write_kubeconfig(tmp_path / "kubeconfig"))
    admin = Kube.connect(field_manager="test", kubeconfig=kubeconfig)
    gateway = Kube.connect(field_manager="wgslice-gateway", access=ACCESS,
                           kubeconfig=kubeconfig)
    admin.create(r.NAMESPACES, {"metadata": {"name": "wgslice-system"}})
    return admin, gateway


def test_secret_store_against_the_api_server(tmp_path, control_plane):
    admin, gateway = kubes(tmp_path, control_plane)
    store = SecretKeyStore("wgslice-system", "gateway-shop", kube=gateway)
    assert store.load() is None
    key, created = load_or_create(store)
    assert created
    # A restart (a new store, a new client) finds the same identity.
    again = SecretKeyStore("wgslice-system", "gateway-shop", kube=Kube(
        gateway.api, field_manager="wgslice-gateway", access=ACCESS))
    assert again.load() == key
    secret = admin.get(r.SECRETS, "gateway-shop", "wgslice-system")
    assert base64.b64decode(secret["data"]["publicKey"]).decode() == key.public_key
    assert secret["metadata"]["annotations"]["wgslice.io/public-key"] == key.public_key
    rotated = PrivateKey.generate()
    store.save(rotated)  # exists -> replace
    assert again.load() == rotated
    managers = {m["manager"] for m in secret["metadata"]["managedFields"]}  # type: ignore[typeddict-item]  # not in ObjectMeta: read here only
    assert managers == {"wgslice-gateway"}
    assert gateway.calls == set(ACCESS.grants)  # exactly what it declares (and the chart grants)


def leaked(exc: BaseException, key: PrivateKey) -> bool:
    b64 = key.reveal_base64()
    forms = (b64, b64.rstrip("="), key.reveal_hex(), base64.b64encode(b64.encode()).decode())
    texts = (str(exc), repr(exc), "".join(traceback.format_exception(exc)), str(vars(exc)))
    return any(f in t for f in forms for t in texts)


def test_a_refused_save_never_quotes_the_key(tmp_path, control_plane):
    admin, gateway = kubes(tmp_path, control_plane)
    key = PrivateKey.generate()
    # no such namespace: the server's NotFound
    with pytest.raises(NotFound) as info:
        SecretKeyStore("nowhere", "gateway-shop", kube=gateway).save(key)
    assert not leaked(info.value, key) and info.value.status == 404
    # a policy that refuses the Secret and quotes its private key in the refusal, as an
    # admission webhook or a careless policy could: the error still names the request and
    # the server's reason, with the key cut out
    admin.create(POLICIES, {
        "metadata": {"name": "refuse-gateway-keys"},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{
                     "apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"],
                     "operations": ["CREATE", "UPDATE"]}]},
                 "validations": [{
                     "expression": "object.metadata.name != 'gateway-refused'",
                     "messageExpression": "'refused, key ' + string(object.data.privateKey)",
                 }]}})
    admin.create(BINDINGS, {
        "metadata": {"name": "refuse-gateway-keys"},
        "spec": {"policyName": "refuse-gateway-keys", "validationActions": ["Deny"]}})
    store = SecretKeyStore("wgslice-system", "gateway-refused", kube=gateway)
    refused: KubeError | None = None
    for _ in range(100):  # bounded: until the policy is in force
        try:
            store.save(key)
        except Invalid as exc:
            refused = exc
            break
        admin.delete(r.SECRETS, "gateway-refused", "wgslice-system")
        time.sleep(0.1)
    assert refused is not None, "the policy never refused the save"
    assert "refused, key <redacted>" in refused.message, refused.message
    assert not leaked(refused, key)
    assert refused.what == "create Secret wgslice-system/gateway-refused"
    assert store.load() is None
