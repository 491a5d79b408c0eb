"""Every CEL rule of the shipped CRDs, checked against the real kube-apiserver.

One control plane (etcd + kube-apiserver, no controller manager) for the module; the CRDs of
slice/crds are installed as shipped. For every `x-kubernetes-validations` rule there is a
case in `crd_rule_cases.CASES` (test_crd_rule_table.py fails, naming the rule, when one is
missing): the bad request must be refused with HTTP 422 and a cause on the expected field
whose message contains the rule's text; the good request must be accepted. Each request is
also given to the product's offline checker (what `wgslice plan` runs): it must refuse what
the server refuses, on the same field, and accept what the server accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crd_rule_cases import CASES, GROUP, MEMBER_NS, VERSION, Case, Op, crd_docs, obj, plurals
from crd_rule_cases import merge_patch as apply_merge_patch
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException
from waiting import wait_for

from wgslice.lab.standalone import ControlPlane
from wgslice.slice.crds import _strip_prefix, validate_object
from wgslice.slice.crds import crds as product_crds
from wgslice.slice.crds.schema_check import validate

pytestmark = pytest.mark.slow
Cause = tuple[str, str, str]  # (field, reason, message)


class Refused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    @property
    def causes(self) -> list[Cause]:
        return [(c.get("field", ""), c.get("reason", ""), c.get("message", ""))
                for c in (self.body.get("details") or {}).get("causes") or []]

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.body.get('message', self.body)}"


class Server:
    """The CustomObjects API of the control plane, one call per Op."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.co = k8s.CustomObjectsApi(api)
        self.plural = plurals()

    def _call(self, fn: Callable[..., Any], kind: str, ns: str | None, *args: Any,
              **kw: Any) -> dict[str, Any]:
        plural, namespaced = self.plural[kind]
        try:
            if namespaced:
                return fn("namespaced")(GROUP, VERSION, ns or MEMBER_NS, plural, *args, **kw)
            return fn("cluster")(GROUP, VERSION, plural, *args, **kw)
        except ApiException as exc:
            try:
                body = json.loads(exc.body or "{}")
            except ValueError:
                body = {"message": exc.body}
            raise Refused(exc.status, body) from None

    def create(self, doc: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._call(lambda s: getattr(self.co, f"create_{s}_custom_object"),
                          doc["kind"], doc["metadata"].get("namespace"), doc, **kw)

    def delete(self, doc: dict[str, Any]) -> None:
        try:
            self._call(lambda s: getattr(self.co, f"delete_{s}_custom_object"), doc["kind"],
                       doc["metadata"].get("namespace"), doc["metadata"]["name"])
        except Refused as exc:
            if exc.status != 404:
                raise

    def apply(self, op: Op, stored: dict[str, Any] | None) -> dict[str, Any]:
        """Send `op` (an update of `stored` unless it is a create); the stored result."""
        if op.verb == "create":
            return self.create(op.body)
        assert stored is not None, f"{op.verb} needs a base object"
        kind, ns, name = stored["kind"], stored["metadata"].get("namespace"), \
            stored["metadata"]["name"]
        if op.verb == "replace":
            return self._call(lambda s: getattr(self.co, f"replace_{s}_custom_object"), kind,
                              ns, name, replaced(stored, op.body))
        assert op.verb == "status", op.verb
        return self._call(lambda s: getattr(self.co, f"patch_{s}_custom_object_status"), kind,
                          ns, name, op.body)


def replaced(stored: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    new = json.loads(json.dumps(stored))
    for key, value in spec.items():
        if value is None:
            new["spec"].pop(key, None)
        else:
            new["spec"][key] = value
    return new


def offline(op: Op, stored: dict[str, Any] | None) -> list[Cause]:
    """The product's verdict on the same request (what `wgslice plan` would say)."""
    if op.verb == "create":
        return [(p.field, "", p.message) for p in validate_object(op.body)[0]]
    assert stored is not None
    crd = product_crds()[stored["kind"]]
    if op.verb == "replace":
        _, errs = validate(crd, VERSION, replaced(stored, op.body), stored, None)
    else:
        _, errs = validate(crd, VERSION, apply_merge_patch(stored, op.body), stored, "status")
    return [(e.field, e.type, e.message) for e in errs]




@pytest.fixture(scope="module")
def server(module_control_plane: Callable[..., ControlPlane],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cp = module_control_plane("crd", controller_manager=False)
    kubeconfig: Path = cp.write_kubeconfig(tmp_path_factory.mktemp("crd") / "kubeconfig")
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    ext = k8s.ApiextensionsV1Api(api)
    names = []
    for crd in crd_docs():
        ext.create_custom_resource_definition(crd)
        names.append(crd["metadata"]["name"])

    def established(name: str) -> bool:
        conds = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)

    for name in names:
        wait_for(f"CRD {name} Established", lambda n=name: established(n))
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": MEMBER_NS}})
    srv = Server(api)
    for kind in srv.plural:  # served, not only Established
        wait_for(f"{kind} served", lambda k=kind: srv._call(
            lambda s: getattr(srv.co, f"list_{s}_custom_object"), k, None) is not None)
    yield srv
    api.close()


def _detail(message: str) -> str:
    """The text after the product's 'Invalid value: "object": ' (Kubernetes 1.37 prints a
    failed rule as 'Invalid value: <message>', older releases with '"object": ')."""
    message = _strip_prefix(message)
    return message.removeprefix("Required value: ")


def _explain(causes: list[Cause]) -> str:
    return "; ".join(f"{f or '<object>'} [{r}]: {m}" for f, r, m in causes) or "no causes"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_rule(server: Server, case: Case) -> None:
    failures: list[str] = []
    hits: list[Cause] = []
    stored = None
    made: list[dict[str, Any]] = []
    try:
        if case.base is not None:
            stored = server.create(case.base)
            made.append(stored)
            for op in case.setup:
                stored = server.apply(op, stored)

        # the bad request: 422, the expected field, the rule's message
        want_field = case.field
        try:
            accepted = server.apply(case.bad, stored)
            if case.bad.verb == "create":
                made.append(accepted)
            failures.append(f"server ACCEPTED the bad {case.bad.verb} (expected 422 on "
                            f"{want_field})")
            server_refused = False
        except Refused as exc:
            server_refused = True
            if exc.status != 422:
                failures.append(f"server refused the bad {case.bad.verb} with {exc}, not 422")
            hits = [c for c in exc.causes if c[0] == want_field and case.fragment in c[2]]
            if not hits:
                failures.append(f"server's 422 has no cause on {want_field} containing "
                                f"{case.fragment!r}: {_explain(exc.causes)}")
            elif hits[0][1] != case.reason:
                failures.append(f"server's cause on {want_field} has reason {hits[0][1]}, "
                                f"expected {case.reason}")
        product = offline(case.bad, stored)
        ours = [m for f, _, m in product if f == want_field and case.fragment in m]
        if server_refused and not product:
            failures.append("DISAGREE: the server refuses the bad request, the product's "
                            "checker (wgslice plan) accepts it")
        elif server_refused and not ours:
            failures.append(f"DISAGREE: the product's checker refuses the bad request but not "
                            f"on {want_field} with {case.fragment!r}: {_explain(product)}")
        elif server_refused and hits and _detail(ours[0]) not in hits[0][2]:
            failures.append(f"DISAGREE: the product says {_detail(ours[0])!r} on {want_field}, "
                            f"the server {hits[0][2]!r}")

        # the good request: accepted by both
        try:
            result = server.apply(case.good, stored)
            if case.good.verb == "create":
                made.append(result)
        except Refused as exc:
            failures.append(f"server refused the good {case.good.verb}: {exc} "
                            f"({_explain(exc.causes)})")
        product = offline(case.good, stored)
        if product:
            failures.append(f"DISAGREE: the product's checker refuses the good "
                            f"{case.good.verb} the server must accept: {_explain(product)}")
    finally:
        for doc in reversed(made):
            server.delete(doc)
    assert not failures, f"{case.rule}:\n  " + "\n  ".join(failures)


# --------------------------------------------------------------------------- OpenAPI level
OPENAPI = [
    # (id, object, field, reason, fragment)
    ("enum", obj("Slice", topology={"type": "Star"}), "spec.topology.type",
     "FieldValueNotSupported", '"Star"'),
    ("pattern", obj("Slice", members=["East_1", "west"]), "spec.members[0]",
     "FieldValueInvalid", "should match"),
    ("maxItems", obj("Slice", members=[f"m{i}" for i in range(257)], namespaces=None),
     "spec.members", "FieldValueTooMany", "must have at most 256 items"),
    ("maxLength", obj("MemberCluster", gatewayEndpoint="h" * 256 + ":51820"),
     "spec.gatewayEndpoint", "FieldValueTooLong", "may not be more than 261"),
    ("minimum", obj("Slice", mtu=1279), "spec.mtu", "FieldValueInvalid",
     "greater than or equal to 1280"),
    ("required", obj("MemberSlice", subnet=None), "spec.subnet", "FieldValueRequired",
     "Required value"),
    ("set", obj("Slice", members=["east", "west", "east"]), "spec.members[2]",
     "FieldValueDuplicate", '"east"'),
]


@pytest.mark.parametrize(("field", "reason", "fragment", "doc"),
                         [pytest.param(f, r, m, d, id=i) for i, d, f, r, m in OPENAPI])
def test_openapi(server: Server, doc: dict[str, Any], field: str, reason: str,
                 fragment: str) -> None:
    try:
        made = server.create(doc)
    except Refused as exc:
        assert exc.status == 422, str(exc)
        assert any(c[0] == field and c[1] == reason and fragment in c[2] for c in exc.causes), \
            _explain(exc.causes)
    else:
        server.delete(made)
        pytest.fail(f"server accepted {doc}")
    product = validate_object(doc)[0]
    assert any(p.field == field and fragment in p.message for p in product), \
        f"DISAGREE: product: {[str(p) for p in product]}"


def test_unknown_fields_strict(server: Server) -> None:
    """kubectl (1.27+) sends fieldValidation=Strict: a misspelt field is refused (HTTP 400,
    not 422: it fails decoding, before validation). The product names the same fields."""
    doc = obj("Slice", memebrs=["east"], namespaces=[{"name": "shop", "colour": "blue"}],
              topology={"type": "FullMesh", "hubb": "east"})
    doc["metadata"]["lables"] = {"team": "a"}
    doc["extra"] = True
    with pytest.raises(Refused) as info:
        server.delete(server.create(doc, field_validation="Strict"))
    assert info.value.status == 400, str(info.value)
    refused = set(re.findall(r'unknown field "([^"]+)"', info.value.body.get("message", "")))
    assert refused == {"spec.memebrs", "spec.namespaces[0].colour", "spec.topology.hubb",
                       "metadata.lables", "extra"}, str(info.value)
    product = {p.field for p in validate_object(doc)[0] if "unknown field" in p.message}
    assert product == refused, f"DISAGREE: server {sorted(refused)}, product {sorted(product)}"
    made = server.create(doc)  # without Strict the server drops them (and warns)
    try:
        assert "memebrs" not in made["spec"]
    finally:
        server.delete(made)
