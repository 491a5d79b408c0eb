"""Decoding of the Kubernetes protobuf request bodies that kubectl sends for built-in kinds.

kubectl (client-go) encodes some requests for built-in types as
`application/vnd.kubernetes.protobuf` and does not retry with JSON on 415: `kubectl auth
can-i` / `auth whoami`, `kubectl create namespace|configmap|secret|serviceaccount|role|
rolebinding|clusterrole|clusterrolebinding|deployment|service`, `kubectl run`, `kubectl
create token`, and the DeleteOptions of `kubectl delete`. This module reads the wire format
(`k8s\\0` + runtime.Unknown) with a hand-written table of the field numbers of those kinds
(from k8s.io/api generated.proto); fields outside the table are dropped. Anything else
still gets 415 with a pointer to `kubectl apply`.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"

# message -> field number -> (json name, type, repeated). Types: s string, b bytes,
# B bool, i varint, t Time, q Quantity, ios IntOrString, m:s / m:b / m:q maps, or a message.
_F = dict[int, tuple[str, str, bool]]
S: dict[str, _F] = {
    "Unknown": {1: ("typeMeta", "TypeMeta", False), 2: ("raw", "b", False),
                3: ("contentEncoding", "s", False), 4: ("contentType", "s", False)},
    "TypeMeta": {1: ("apiVersion", "s", False), 2: ("kind", "s", False)},
    "ObjectMeta": {1: ("name", "s", False), 2: ("generateName", "s", False),
                   3: ("namespace", "s", False), 5: ("uid", "s", False),
                   6: ("resourceVersion", "s", False), 11: ("labels", "m:s", False),
                   12: ("annotations", "m:s", False),
                   13: ("ownerReferences", "OwnerReference", True),
                   14: ("finalizers", "s", True)},
    "OwnerReference": {1: ("kind", "s", False), 3: ("name", "s", False),
                       4: ("uid", "s", False), 5: ("apiVersion", "s", False),
                       6: ("controller", "B", False), 7: ("blockOwnerDeletion", "B", False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "NamespaceSpec", False)},
    "NamespaceSpec": {1: ("finalizers", "s", True)},
    "ConfigMap": {1: ("metadata", "ObjectMeta", False), 2: ("data", "m:s", False),
                  3: ("binaryData", "m:b", False), 4: ("immutable", "B", False)},
    "Secret": {1: ("metadata", "ObjectMeta", False), 2: ("data", "m:b", False),
               3: ("type", "s", False), 4: ("stringData", "m:s", False),
               5: ("immutable", "B", False)},
    "ServiceAccount": {1: ("metadata", "ObjectMeta", False),
                       4: ("automountServiceAccountToken", "B", False)},
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta", False),
                                2: ("spec", "SSARSpec", False)},
    "SSARSpec": {1: ("resourceAttributes", "ResourceAttributes", False),
                 2: ("nonResourceAttributes", "NonResourceAttributes", False)},
    "ResourceAttributes": {1: ("namespace", "s", False), 2: ("verb", "s", False),
                           3: ("group", "s", False), 4: ("version", "s", False),
                           5: ("resource", "s", False), 6: ("subresource", "s", False),
                           7: ("name", "s", False)},
    "NonResourceAttributes": {1: ("path", "s", False), 2: ("verb", "s", False)},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta", False),
                               2: ("spec", "SSRRSpec", False)},
    "SSRRSpec": {1: ("namespace", "s", False)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", False)},
    "TokenRequest": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "TokenRequestSpec",
                                                              False)},
    "TokenRequestSpec": {1: ("audiences", "s", True), 4: ("expirationSeconds", "i", False)},
    "DeleteOptions": {1: ("gracePeriodSeconds", "i", False),
                      2: ("preconditions", "Preconditions", False),
                      3: ("orphanDependents", "B", False), 4: ("propagationPolicy", "s", False),
                      5: ("dryRun", "s", True)},
    "Preconditions": {1: ("uid", "s", False), 2: ("resourceVersion", "s", False)},
    "PolicyRule": {1: ("verbs", "s", True), 2: ("apiGroups", "s", True),
                   3: ("resources", "s", True), 4: ("resourceNames", "s", True),
                   5: ("nonResourceURLs", "s", True)},
    "Role": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True)},
    "ClusterRole": {1: ("metadata", "ObjectMeta", False), 2: ("rules", "PolicyRule", True),
                    3: ("aggregationRule", "AggregationRule", False)},
    "AggregationRule": {1: ("clusterRoleSelectors", "LabelSelector", True)},
    "Subject": {1: ("kind", "s", False), 2: ("apiGroup", "s", False), 3: ("name", "s", False),
                4: ("namespace", "s", False)},
    "RoleRef": {1: ("apiGroup", "s", False), 2: ("kind", "s", False), 3: ("name", "s", False)},
    "RoleBinding": {1: ("metadata", "ObjectMeta", False), 2: ("subjects", "Subject", True),
                    3: ("roleRef", "RoleRef", False)},
    "LabelSelector": {1: ("matchLabels", "m:s", False),
                      2: ("matchExpressions", "LabelSelectorRequirement", True)},
    "LabelSelectorRequirement": {1: ("key", "s", False), 2: ("operator", "s", False),
                                 3: ("values", "s", True)},
    "Pod": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "PodSpec": {2: ("containers", "Container", True), 3: ("restartPolicy", "s", False),
                4: ("terminationGracePeriodSeconds", "i", False), 6: ("dnsPolicy", "s", False),
                7: ("nodeSelector", "m:s", False), 8: ("serviceAccountName", "s", False),
                10: ("nodeName", "s", False), 11: ("hostNetwork", "B", False),
                16: ("hostname", "s", False), 19: ("schedulerName", "s", False)},
    "Container": {1: ("name", "s", False), 2: ("image", "s", False), 3: ("command", "s", True),
                  4: ("args", "s", True), 5: ("workingDir", "s", False),
                  6: ("ports", "ContainerPort", True), 7: ("env", "EnvVar", True),
                  8: ("resources", "ResourceRequirements", False),
                  13: ("terminationMessagePath", "s", False),
                  14: ("imagePullPolicy", "s", False), 16: ("stdin", "B", False),
                  17: ("stdinOnce", "B", False), 18: ("tty", "B", False),
                  20: ("terminationMessagePolicy", "s", False)},
    "ContainerPort": {1: ("name", "s", False), 2: ("hostPort", "i", False),
                      3: ("containerPort", "i", False), 4: ("protocol", "s", False)},
    "EnvVar": {1: ("name", "s", False), 2: ("value", "s", False)},
    "ResourceRequirements": {1: ("limits", "m:q", False), 2: ("requests", "m:q", False)},
    "Deployment": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "DeploymentSpec", False)},
    "DeploymentSpec": {1: ("replicas", "i", False), 2: ("selector", "LabelSelector", False),
                       3: ("template", "PodTemplateSpec", False),
                       4: ("strategy", "DeploymentStrategy", False)},
    "DeploymentStrategy": {1: ("type", "s", False)},
    "Service": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "ServiceSpec", False)},
    "ServiceSpec": {1: ("ports", "ServicePort", True), 2: ("selector", "m:s", False),
                    3: ("clusterIP", "s", False), 4: ("type", "s", False),
                    7: ("externalName", "s", False)},
    "ServicePort": {1: ("name", "s", False), 2: ("protocol", "s", False),
                    3: ("port", "i", False), 4: ("targetPort", "ios", False),
                    5: ("nodePort", "i", False)},
}
ALIASES = {"ClusterRoleBinding": "RoleBinding"}
# Integers that are really "unset" when zero in a gogo-encoded non-pointer field.
_DROP_ZERO = {"hostPort", "nodePort", "gracePeriodSeconds"}


class ProtobufError(ValueError):
    """The body is not protobuf we can read (unknown kind or malformed)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
            out.append((num, val))
        elif wire == 2:
            n, pos = _varint(buf, pos)
            out.append((num, buf[pos:pos + n]))
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _scalar(typ: str, val: int | bytes) -> Any:
    if typ == "s":
        return val.decode() if isinstance(val, bytes) else str(val)
    if typ == "b":
        return base64.b64encode(val).decode() if isinstance(val, bytes) else ""
    if typ == "B":
        return bool(val)
    if typ == "i":
        v = int(val) if isinstance(val, int) else 0
        return v - (1 << 64) if v >= 1 << 63 else v
    if typ == "t":
        secs = dict(_fields(val)).get(1, 0) if isinstance(val, bytes) else 0
        return datetime.fromtimestamp(int(secs), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") \
            if secs else None
    if typ == "q":
        return dict(_fields(val)).get(1, b"").decode() if isinstance(val, bytes) else ""
    if typ == "ios":
        f = dict(_fields(val)) if isinstance(val, bytes) else {}
        if f.get(1, 0) == 1:
            s = f.get(3, b"")
            return s.decode() if isinstance(s, bytes) else str(s)
        return _scalar("i", f.get(2, 0))
    return decode_message(typ, val if isinstance(val, bytes) else b"")


def decode_message(name: str, buf: bytes) -> dict[str, Any]:
    schema = S[ALIASES.get(name, name)]
    out: dict[str, Any] = {}
    for num, val in _fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue
        key, typ, repeated = spec
        if typ.startswith("m:"):
            entry = dict(_fields(val if isinstance(val, bytes) else b""))
            k = _scalar("s", entry.get(1, b""))
            out.setdefault(key, {})[k] = _scalar(typ[2:], entry.get(2, b""))
            continue
        v = _scalar(typ, val)
        if repeated:
            out.setdefault(key, []).append(v)
        elif v not in ("", None, False, {}) and not (key in _DROP_ZERO and v == 0):
            out[key] = v
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a `k8s\\0`-framed protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    env = decode_message("Unknown", body[len(MAGIC):])
    tm = env.get("typeMeta") or {}
    kind = tm.get("kind", "")
    if ALIASES.get(kind, kind) not in S or kind in ("Unknown", "TypeMeta"):
        raise ProtobufError(f"no protobuf decoding for kind {kind or '?'}")
    raw = base64.b64decode(env.get("raw", ""))
    obj = decode_message(kind, raw)
    obj["apiVersion"], obj["kind"] = tm.get("apiVersion", ""), kind
    return obj
