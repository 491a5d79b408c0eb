"""Treat a custom resource the way kube-apiserver does before it is stored.

`validate(crd, version, obj, old, subresource)` returns the object to store and a list of
`FieldError`s (empty when valid), doing, in the real server's order:

1. status-subresource isolation (create drops status; an update of the main resource keeps
   the stored status; an update of `/status` keeps everything but status);
2. pruning of fields the schema does not declare (unless x-kubernetes-preserve-unknown-fields),
   and of nulls in non-nullable fields;
3. schema defaults (recursively, so a defaulted `{}` gets its own fields' defaults);
4. OpenAPI validation: type, enum, pattern, format, min/max, length, items, required,
   list-type set/map uniqueness, allOf/anyOf/oneOf/not;
5. x-kubernetes-validations CEL rules, transition rules (those naming `oldSelf`) only on
   update and only where the value existed in the old object (correlated through object
   properties and map-list keys). As in Kubernetes, CEL is skipped when step 4 found a
   "blocking" error (wrong type, missing required field, unsupported enum, too long/many).

Errors carry Kubernetes' field paths (`spec.topology.hub`, `spec.members[1]`), cause types
(`FieldValueInvalid`, ...) and message bodies, so `errors.invalid(kind, group, name, errs)`
renders the 422 a real server sends. Not modelled: validation ratcheting of unchanged
fields, CEL cost budgets, `optionalOldSelf`, metadata beyond name.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import functools
import json
import re
from typing import Any, NamedTuple

from celpy import celtypes
from celpy.evaluation import CELEvalError

from wgslice.slice.crds.cel import (
    CELCompileError,
    call_style_problems,
    compile_rule,
    evaluate,
    to_cel,
)


class FieldError(NamedTuple):
    """One metav1.StatusCause: (field, reason, message) - the tuple errors.invalid takes."""

    field: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


INVALID, REQUIRED = "FieldValueInvalid", "FieldValueRequired"
NOT_SUPPORTED, DUPLICATE = "FieldValueNotSupported", "FieldValueDuplicate"
FORBIDDEN, TYPE_INVALID = "FieldValueForbidden", "FieldValueTypeInvalid"
TOO_LONG, TOO_MANY = "FieldValueTooLong", "FieldValueTooMany"
BLOCKING = {NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID}
CEL_SKIPPED = ("some validation rules were not checked because the object was invalid; "
               "correct the existing errors to complete validation")
_OLD_SELF = re.compile(r"\boldSelf\b")
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def _show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return "null"


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, INVALID, f"Invalid value: {_show(value)}: {detail}")


def _rule_error(reason: str, path: str, type_name: str, detail: str) -> FieldError:
    """A failed CEL rule, shaped like k8s: the 'value' shown is the schema type."""
    if reason == REQUIRED:
        return FieldError(path, REQUIRED, f"Required value: {detail}")
    if reason == FORBIDDEN:
        return FieldError(path, FORBIDDEN, f"Forbidden: {detail}")
    if reason == DUPLICATE:
        return FieldError(path, DUPLICATE, f"Duplicate value: {_show(detail)}")
    return invalid(path, type_name, detail)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def schema_for(crd: dict[str, Any], version: str) -> dict[str, Any]:
    for ver in crd["spec"]["versions"]:
        if ver["name"] == version:
            return ver.get("schema", {}).get("openAPIV3Schema", {})
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def has_status_subresource(crd: dict[str, Any], version: str) -> bool:
    for ver in crd["spec"]["versions"]:
        if ver["name"] == version:
            return "status" in (ver.get("subresources") or {})
    return False


# --------------------------------------------------------------------------- prune, default
def prune(value: Any, schema: dict[str, Any], root: bool = False) -> Any:
    """Drop undeclared fields and non-nullable nulls that have no default, in place."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True
        for key in list(value):
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is None:
                if not keep_unknown:
                    del value[key]
            elif value[key] is None and not sub.get("nullable") and "default" not in sub:
                del value[key]
            else:
                prune(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            prune(item, schema["items"])
    return value


OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields"})


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "",
                   root: bool = True) -> list[str]:
    """The fields `prune` would drop, as kube-apiserver's strict decoding names them
    (``spec.namespaces[0].colour``): with ``fieldValidation=Strict``, the default of
    ``kubectl apply`` and ``create`` since 1.27, the server refuses them (HTTP 400)."""
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-preserve-unknown-fields") or extra is True:
            return found
        for key, item in value.items():
            here = _child(path, key)
            if root and key in ("apiVersion", "kind"):
                continue
            if root and key == "metadata":
                if isinstance(item, dict):
                    found += [_child(here, k) for k in item if k not in OBJECT_META_FIELDS]
                continue
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is None:
                found.append(here)
            else:
                found += unknown_fields(item, sub, here, root=False)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]", root=False)
    return found


def default(value: Any, schema: dict[str, Any]) -> Any:
    """Apply `default`s where a field is absent (or null and not nullable), in place."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            missing = key not in value or (value[key] is None and not sub.get("nullable"))
            if "default" in sub and missing:
                value[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                default(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            default(item, schema["items"])
    return value


# --------------------------------------------------------------------------- OpenAPI checks
def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date-time":
            dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            return "T" in value.upper()
        if fmt == "date":
            dt.date.fromisoformat(value)
        elif fmt == "byte":
            base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


def _key_of(item: Any, keys: list[str]) -> tuple[str, ...]:
    return tuple(_show(item.get(k)) if isinstance(item, dict) else _show(item) for k in keys)


def check_schema(value: Any, schema: dict[str, Any], path: str, errs: list[FieldError],
                 root: bool = False) -> None:
    """OpenAPI v3 validation of one value, appending Kubernetes-shaped errors."""
    if value is None:
        if not schema.get("nullable"):
            errs.append(FieldError(path, TYPE_INVALID, f'Invalid value: "null": {path} in body '
                                   f'must be of type {schema.get("type", "object")}: "null"'))
        return
    want = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        ok = _TYPES["integer"](value) or isinstance(value, str)
        want = want or "int-or-string"
    else:
        ok = want is None or _TYPES[want](value)
    if not ok:
        got = _json_type(value)
        errs.append(FieldError(path, TYPE_INVALID, f'Invalid value: "{got}": {path} in body '
                               f'must be of type {want}: "{got}"'))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(e) for e in schema["enum"])
        errs.append(FieldError(path, NOT_SUPPORTED,
                               f"Unsupported value: {_show(value)}: supported values: {allowed}"))
    if isinstance(value, str):
        _check_string(value, schema, path, errs)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, errs)
    elif isinstance(value, list):
        _check_list(value, schema, path, errs)
    elif isinstance(value, dict):
        _check_object(value, schema, path, errs, root)
    for sub in schema.get("allOf") or []:
        check_schema(value, sub, path, errs)
    _check_combinators(value, schema, path, errs)


def _check_string(value: str, schema: dict[str, Any], path: str, errs: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errs.append(FieldError(path, TOO_LONG,
                               f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errs.append(invalid(path, value,
                            f"{path} in body should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errs.append(invalid(path, value, f"{path} in body should match '{schema['pattern']}'"))
    fmt = schema.get("format")
    if fmt and not _format_ok(fmt, value):
        errs.append(invalid(path, value, f"{path} in body must be of type {fmt}: {_show(value)}"))


def _check_number(value: float, schema: dict[str, Any], path: str,
                  errs: list[FieldError]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and (value < low or (schema.get("exclusiveMinimum") and value == low)):
        rel = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
        errs.append(invalid(path, value, f"{path} in body should be {rel} {low}"))
    if high is not None and (value > high or (schema.get("exclusiveMaximum") and value == high)):
        rel = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
        errs.append(invalid(path, value, f"{path} in body should be {rel} {high}"))
    step = schema.get("multipleOf")
    if step and value % step:
        errs.append(invalid(path, value, f"{path} in body should be a multiple of {step}"))


def _check_list(value: list[Any], schema: dict[str, Any], path: str,
                errs: list[FieldError]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errs.append(FieldError(path, TOO_MANY, f"Too many: {len(value)}: must have at most "
                               f"{schema['maxItems']} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        errs.append(invalid(path, value,
                            f"{path} in body should have at least {schema['minItems']} items"))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            check_schema(item, items, f"{path}[{i}]", errs)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type in ("set", "map"):
        keys = schema.get("x-kubernetes-list-map-keys") or [] if list_type == "map" else []
        seen: set[tuple[str, ...]] = set()
        for i, item in enumerate(value):
            key = _key_of(item, keys) if keys else (_show(item),)
            if key in seen:
                shown = {k: item.get(k) for k in keys} if keys and isinstance(item, dict) else item
                errs.append(FieldError(f"{path}[{i}]", DUPLICATE,
                                       f"Duplicate value: {_show(shown)}"))
            seen.add(key)


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str,
                  errs: list[FieldError], root: bool) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(FieldError(_child(path, key), REQUIRED, "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errs.append(FieldError(path, TOO_MANY, f"Too many: {len(value)}: must have at most "
                               f"{schema['maxProperties']} items"))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errs.append(invalid(path, value, f"{path} in body should have at least "
                            f"{schema['minProperties']} properties"))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in ("apiVersion", "kind", "metadata"):
            continue
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub is not None:
            check_schema(item, sub, _child(path, key), errs)


def _check_combinators(value: Any, schema: dict[str, Any], path: str,
                       errs: list[FieldError]) -> None:
    def ok(sub: dict[str, Any]) -> bool:
        found: list[FieldError] = []
        check_schema(value, sub, path, found)
        return not found

    if "anyOf" in schema and not any(ok(s) for s in schema["anyOf"]):
        errs.append(invalid(path, value, "must validate at least one schema (anyOf)"))
    if "oneOf" in schema and sum(ok(s) for s in schema["oneOf"]) != 1:
        errs.append(invalid(path, value, "must validate one and only one schema (oneOf)"))
    if "not" in schema and ok(schema["not"]):
        errs.append(invalid(path, value, "must not validate the schema (not)"))


# --------------------------------------------------------------------------- CEL rules
def _root_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What a root rule sees: metadata is reduced to name and generateName."""
    view = dict(obj)
    meta = obj.get("metadata") or {}
    view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view


@functools.lru_cache(maxsize=8192)
def _rule_outcome(expr: str, message: str, message_expr: str, self_json: str,
                  old_json: str | None) -> str | None:
    """None when the rule holds, else the error detail. Pure, so memoized: a controller's
    status writes re-validate an unchanged spec, and cel-python needs ~1 ms per rule."""
    variables = {"self": to_cel(json.loads(self_json))}
    if old_json is not None:
        variables["oldSelf"] = to_cel(json.loads(old_json))
    try:
        result = evaluate(expr, variables)
    except (CELEvalError, CELCompileError) as ex:
        return f"{ex.args[0] if ex.args else ex} evaluating rule: {expr}"
    if not isinstance(result, bool | celtypes.BoolType):
        return f"rule did not evaluate to a bool: {expr}"
    if result:
        return None
    if message_expr:
        try:
            text = evaluate(message_expr, variables)
            if isinstance(text, str) and text.strip() and "\n" not in text:
                return str(text)
        except (CELEvalError, CELCompileError):
            pass  # Kubernetes logs it and falls back to `message`
    return message or f"failed rule: {expr}"


def check_rules(value: Any, schema: dict[str, Any], path: str, errs: list[FieldError],
                old: Any = None, has_old: bool = False, root: bool = False) -> None:
    """Evaluate x-kubernetes-validations on `value` and below, correlating `old`."""
    rules = schema.get("x-kubernetes-validations")
    if rules and value is not None:
        self_json = _show(_root_view(value) if root else value)
        old_json = _show(_root_view(old) if root else old) if has_old else None
        for rule in rules:
            if _OLD_SELF.search(rule["rule"]) and not has_old:
                continue  # a transition rule: only on update, where the value existed
            detail = _rule_outcome(rule["rule"], rule.get("message", ""),
                                   rule.get("messageExpression", ""), self_json, old_json)
            if detail is not None:
                field_path = rule.get("fieldPath", "").lstrip(".")
                errs.append(_rule_error(rule.get("reason", INVALID),
                                        _child(path, field_path) if field_path else path,
                                        schema.get("type", "object"), detail))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if has_old and isinstance(old, dict) else {}
        for key, item in value.items():
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                check_rules(item, sub, _child(path, key), errs, old_map.get(key), key in old_map)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        old_items: dict[tuple[str, ...], Any] = {}
        if has_old and isinstance(old, list) and schema.get("x-kubernetes-list-type") == "map":
            old_items = {_key_of(o, keys): o for o in old}
        for i, item in enumerate(value):
            key = _key_of(item, keys)
            check_rules(item, schema["items"], f"{path}[{i}]", errs,
                        old_items.get(key), key in old_items)


# --------------------------------------------------------------------------- entry point
def _isolate_status(obj: dict[str, Any], old: dict[str, Any] | None,
                    subresource: str | None) -> dict[str, Any]:
    if old is None:
        obj.pop("status", None)
        return obj
    if subresource == "status":
        merged = copy.deepcopy(old)
        if "status" in obj:
            merged["status"] = obj["status"]
        else:
            merged.pop("status", None)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version is not None:
            merged.setdefault("metadata", {})["resourceVersion"] = version
        return merged
    if "status" in old:
        obj["status"] = copy.deepcopy(old["status"])
    else:
        obj.pop("status", None)
    return obj


def _check_name(obj: dict[str, Any], errs: list[FieldError]) -> None:
    name = (obj.get("metadata") or {}).get("name")
    if name is None:
        if not (obj.get("metadata") or {}).get("generateName"):
            errs.append(FieldError("metadata.name", REQUIRED,
                                   "Required value: name or generateName is required"))
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        errs.append(invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist "
                            "of lower case alphanumeric characters, '-' or '.', and must start "
                            "and end with an alphanumeric character (e.g. 'example.com')"))


def validate(crd: dict[str, Any], version: str, obj: dict[str, Any],
             old: dict[str, Any] | None = None,
             subresource: str | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    """Prune, default and validate `obj` (a create when `old` is None, else an update).

    `subresource` is None for the main resource or "status". Call it after resolving
    generateName (root rules read metadata.name). Returns the object to store (a new dict;
    inputs are not modified) and the errors; store only when errors is empty.
    """
    schema = schema_for(crd, version)
    new = copy.deepcopy(obj)
    if has_status_subresource(crd, version) and subresource in (None, "status"):
        new = _isolate_status(new, old, subresource)
    default(prune(new, schema, root=True), schema)
    previous = None
    if old is not None:
        previous = default(prune(copy.deepcopy(old), schema, root=True), schema)
    errs: list[FieldError] = []
    _check_name(new, errs)
    check_schema(new, schema, "", errs, root=True)
    if any(e.type in BLOCKING for e in errs):
        errs.append(FieldError("", INVALID, CEL_SKIPPED))
    else:
        check_rules(new, schema, "", errs, previous, previous is not None, root=True)
    return new, errs


def structural_errors(crd: dict[str, Any]) -> list[str]:
    """Why a CRD would be refused: non-structural schema or a rule that does not compile."""
    problems: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if not node.get("type") and not (node.get("x-kubernetes-int-or-string")
                                         or node.get("x-kubernetes-preserve-unknown-fields")):
            problems.append(f"{path}: type must not be empty")
        if node.get("properties") and node.get("additionalProperties") not in (None, False):
            problems.append(f"{path}: properties and additionalProperties are exclusive")
        if node.get("x-kubernetes-list-map-keys") and node.get("x-kubernetes-list-type") != "map":
            problems.append(f"{path}: x-kubernetes-list-map-keys needs list-type map")
        for key in node.get("x-kubernetes-list-map-keys") or []:
            item = node.get("items") or {}
            if key not in (item.get("required") or []) and "default" not in (
                    item.get("properties") or {}).get(key, {}):
                problems.append(f"{path}: map key {key} must be required or defaulted")
        for rule in node.get("x-kubernetes-validations") or []:
            for expr in (rule.get("rule"), rule.get("messageExpression")):
                if expr:
                    try:
                        compile_rule(expr)
                    except CELCompileError as ex:
                        problems.append(f"{path}: {ex}")
                        continue
                    problems.extend(f"{path}: {p}" for p in call_style_problems(expr))
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, _child(path, key))
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}.{key}")

    for ver in crd["spec"]["versions"]:
        walk(ver.get("schema", {}).get("openAPIV3Schema", {}), ver["name"])
    return problems
