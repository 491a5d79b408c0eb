"""The validator and CEL library on their own: Kubernetes semantics beyond our CRDs."""

from __future__ import annotations

from typing import Any

import pytest
from celpy.evaluation import CELEvalError

from wgslice.slice.crds import cel
from wgslice.slice.crds.schema_check import structural_errors, validate


def crd(schema: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "things.example.com"},
            "spec": {"versions": [{"name": "v1", "subresources": {},
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "properties": {"spec": schema}}}}]}}


def run(schema: dict[str, Any], spec: Any, old_spec: Any = None) -> tuple[Any, list[Any]]:
    obj = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"},
           "spec": spec}
    old = None if old_spec is None else {**obj, "spec": old_spec}
    stored, errs = validate(crd(schema), "v1", obj, old)
    return stored.get("spec"), errs


def test_preserve_unknown_and_nullable() -> None:
    schema = {"type": "object", "properties": {
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"known": {"type": "object", "properties": {}}}},
        "maybe": {"type": "string", "nullable": True},
        "gone": {"type": "string"},
        "dflt": {"type": "string", "default": "x"}}}
    spec, errs = run(schema, {"open": {"a": 1, "known": {"b": 2}}, "maybe": None,
                              "gone": None, "dflt": None})
    assert errs == []
    assert spec == {"open": {"a": 1, "known": {}}, "maybe": None, "dflt": "x"}


def test_schema_keywords() -> None:
    schema = {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 3},
        "f": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        "s": {"type": "string", "minLength": 2, "format": "date-time"},
        "ios": {"x-kubernetes-int-or-string": True},
        "m": {"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 1},
        "l": {"type": "array", "maxItems": 1, "items": {"type": "boolean"}}}}
    _, errs = run(schema, {"n": 5, "f": 0, "s": "x", "ios": [1], "m": {"a": "b", "c": 1},
                           "l": [True, "no"]})
    got = {(e.field, e.type) for e in errs}
    assert {("spec.n", "FieldValueInvalid"), ("spec.f", "FieldValueInvalid"),
            ("spec.s", "FieldValueInvalid"), ("spec.ios", "FieldValueTypeInvalid"),
            ("spec.m.a", "FieldValueTypeInvalid"), ("spec.m", "FieldValueTooMany"),
            ("spec.l", "FieldValueTooMany"), ("spec.l[1]", "FieldValueTypeInvalid")} <= got
    _, errs = run(schema, {})
    assert errs[0].field == "spec.n" and errs[0].type == "FieldValueRequired"
    assert run(schema, {"n": 2, "s": "2026-11-25T15:00:00Z", "ios": "50%"})[1] == []


def test_transition_rules_correlate_map_lists() -> None:
    item = {"type": "object", "required": ["k"], "properties": {
        "k": {"type": "string", "maxLength": 8},
        "v": {"type": "string", "maxLength": 8,
              "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "frozen"}]}}}
    schema = {"type": "object", "properties": {
        "map": {"type": "array", "maxItems": 4, "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["k"], "items": item},
        "atomic": {"type": "array", "maxItems": 4, "items": item}}}
    old = {"map": [{"k": "a", "v": "1"}], "atomic": [{"k": "a", "v": "1"}]}
    _, errs = run(schema, {"map": [{"k": "b", "v": "9"}, {"k": "a", "v": "2"}],
                           "atomic": [{"k": "a", "v": "2"}]}, old)
    # Only the correlated map item (key a, now at index 1) is checked; atomic lists are not.
    assert [(e.field, e.message) for e in errs] == [
        ("spec.map[1].v", 'Invalid value: "string": frozen')]
    assert run(schema, {"map": [{"k": "a", "v": "2"}]})[1] == []  # create: no transition


def test_rule_errors_and_message_expression_fallback() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string", "maxLength": 9}},
              "x-kubernetes-validations": [
                  {"rule": "self.s.startsWith('a')", "messageExpression": "self.nokey",
                   "message": "fallback"},
                  {"rule": "cidr(self.s).prefixLength() > 0"},
                  {"rule": "self.s", "reason": "FieldValueForbidden"}]}
    _, errs = run(schema, {"s": "b"})
    messages = [e.message for e in errs]
    assert messages[0] == 'Invalid value: "object": fallback'
    assert "evaluating rule: cidr(self.s)" in messages[1]
    assert "did not evaluate to a bool" in messages[2]


def test_structural_errors_found() -> None:
    bad = crd({"properties": {"x": {"type": "string", "x-kubernetes-validations": [
        {"rule": "self ==", "message": "m"}]}}})
    problems = structural_errors(bad)
    assert any("type must not be empty" in p for p in problems)
    assert any("cannot compile" in p for p in problems)


@pytest.mark.parametrize("expr,problem", [
    ("cidr(self).masked().string() == self", "string() is not a method"),
    ("self.isCIDR()", "isCIDR() is not a method"),
    ("masked(cidr(self)) == cidr(self)", "masked() is a method"),
    ("[1].reduce(a, b, 0, a + b) == 1", "reduce() is not Kubernetes CEL"),
])
def test_call_styles_a_real_server_refuses(expr: str, problem: str) -> None:
    assert any(problem in p for p in cel.call_style_problems(expr))
    assert cel.call_style_problems("string(cidr(self).masked()) == self && "
                                   "cidr(self).ip().family() == 4 && ip(self) == ip(self) && "
                                   "size(self) == self.size() && sets.contains([1], [1])") == []


CEL_TRUE = [
    "isCIDR('10.0.0.0/8') && isCIDR('fd00::/8') && isCIDR('10.1.0.1/16')",
    "!isCIDR('10.0.0.0/33') && !isCIDR('010.0.0.0/8') && !isCIDR('10.0.0.0/08')",
    "!isCIDR('::ffff:1.2.3.4/120') && !isCIDR('fe80::1%eth0/64') && !isCIDR('10.0.0.0')",
    "string(cidr('10.1.0.1/16').masked()) == '10.1.0.0/16'",
    "cidr('10.1.0.1/16') != cidr('10.1.0.1/16').masked()",
    "cidr('fd00::/48').ip().family() == 6 && cidr('10.0.0.0/8').ip().family() == 4",
    "cidr('10.224.0.0/20').containsCIDR('10.224.1.0/24')",
    "!cidr('10.224.0.0/20').containsCIDR('10.224.0.0/16')",
    "cidr('10.224.0.0/20').containsIP('10.224.15.255')",
    "!cidr('10.224.0.0/20').containsIP(ip('10.224.16.0'))",
    "isIP('2001:db8::1') && !isIP('1.2.3') && !isIP('01.2.3.4')",
    "ip('127.0.0.1').isLoopback() && ip('::').isUnspecified() && ip('8.8.8.8').isGlobalUnicast()",
    "ip('169.254.1.1').isLinkLocalUnicast() && ip('ff02::1').isLinkLocalMulticast()",
    "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1')",
    "string(ip('2001:DB8:0:0::1')) == '2001:db8::1'",
    "['a', 'b'].join(', ') == 'a, b' && 'Ab'.lowerAscii() == 'ab' && 'abc'.substring(1) == 'bc'",
    "sets.contains(['a', 'b'], ['b']) && sets.intersects(['a'], ['a', 'c'])",
    "'abc'.contains('b') && 'abc'.indexOf('c') == 2 && 'a,b'.split(',').size() == 2",
    "!(false && cidr('junk').prefixLength() == 1)",
    "true || cidr('junk').prefixLength() == 1",
    "[1, 2].exists_one(x, x == 2) && [1, 2].all(x, x > 0) && [1, 2].exists(x, x == 1)",
]


@pytest.mark.parametrize("expr", CEL_TRUE)
def test_kubernetes_cel_library(expr: str) -> None:
    assert cel.evaluate(expr, {}) == True  # noqa: E712 - a CEL BoolType, not a Python bool


@pytest.mark.parametrize("expr", ["cidr('junk')", "ip('10.0.0.1/8')", "cidr('1.2.3.4/8').x()",
                                  "ip('1.2.3.4').prefixLength()"])
def test_cel_errors_are_errors(expr: str) -> None:
    with pytest.raises(CELEvalError):
        cel.evaluate(expr, {})


def test_rules_compiled_once() -> None:
    cel.compile_rule.cache_clear()
    for _ in range(3):
        cel.evaluate("1 + 1 == 2", {})
    info = cel.compile_rule.cache_info()
    assert (info.misses, info.hits) == (1, 2)
