"""The CEL environment a Kubernetes API server offers to CRD validation rules.

Runtime: cel-python (``celpy``, pure Python, already a dependency). It evaluates CEL with the
spec's error semantics (``false && error`` is false, an untaken ternary branch may error) and
lets us add *typed* values, so ``cidr(x)`` is an opaque CIDR as in Kubernetes (it never
equals a string; ``cidr(a) == cidr(a).masked()`` compares networks). The Rust-based
``common-expression-language`` was ~10x faster per evaluation (~40 us against ~400 us) but
can neither return opaque values from Python functions nor override ``string()``; the lab's
few writes per second do not need the speed, and validation.py memoizes rule outcomes.
cel-python's CompiledRunner is not used: it mis-evaluates an erroring ternary branch that is
not taken. cel-python does not type-check, so `call_style_problems` refuses the call forms
cel-go would reject at CRD creation (``cidr(x).string()``, ``masked(c)``).

On top of the CEL standard library this registers what the Kubernetes API server adds and
our CRDs (or plausible ones) use:

- IP library: ``isIP(s)``, ``ip(s)``, ``ip.family()``, ``ip.isUnspecified()``,
  ``ip.isLoopback()``, ``ip.isLinkLocalMulticast()``, ``ip.isLinkLocalUnicast()``,
  ``ip.isGlobalUnicast()``, ``ip.isCanonical(s)``, ``string(ip)``;
- CIDR library: ``isCIDR(s)``, ``cidr(s)``, ``c.ip()``, ``c.masked()``, ``c.prefixLength()``,
  ``c.containsIP(ip|s)``, ``c.containsCIDR(cidr|s)``, ``string(c)``;
- strings extension bits: ``join``, ``lowerAscii``, ``upperAscii``, ``trim``, ``split``,
  ``indexOf``, ``lastIndexOf``, ``substring``, ``replace``; ``sets.contains``,
  ``sets.intersects``, ``sets.equivalent``.

Semantics follow k8s.io/apiserver/pkg/cel/library (cidr.go, ip.go): IPv4 octets with leading
zeros, IPv6 zones and IPv4-mapped IPv6 addresses are refused; ``cidr('10.1.0.1/16')`` is
*accepted* (host bits are kept), which is why canonical form is checked with
``string(cidr(s).masked()) == s``. ``containsCIDR`` follows the documented (fixed in
Kubernetes 1.33, PR 130450) semantics; older API servers wrongly answer false for a subnet
not starting at the outer network address, so our CRDs use ``containsIP`` instead.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import CELEvalError, base_functions
from lark import Token

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IP:
    """An opaque ``net.IP`` value, as the Kubernetes IP library returns from ``ip()``."""

    __slots__ = ("addr",)

    def __init__(self, addr: Address) -> None:
        self.addr = addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IP) and self.addr == other.addr

    def __hash__(self) -> int:
        return hash(("ip", self.addr))

    def __str__(self) -> str:
        return str(self.addr)

    def __repr__(self) -> str:
        return f"ip({str(self.addr)!r})"


class CIDR:
    """An opaque ``net.CIDR`` value: an address plus prefix length, host bits kept."""

    __slots__ = ("addr", "bits")

    def __init__(self, addr: Address, bits: int) -> None:
        self.addr = addr
        self.bits = bits

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network((self.addr, self.bits), strict=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIDR) and (self.addr, self.bits) == (other.addr, other.bits)

    def __hash__(self) -> int:
        return hash(("cidr", self.addr, self.bits))

    def __str__(self) -> str:
        return f"{self.addr}/{self.bits}"

    def __repr__(self) -> str:
        return f"cidr({str(self)!r})"


def _err(message: str) -> CELEvalError:
    return CELEvalError(message)


def parse_ip(text: str) -> Address:
    """Parse like the Kubernetes IP library (netip.ParseAddr, no zones, no 4-in-6)."""
    if "%" in text:
        raise ValueError(f"IP address with zone value is not allowed: {text}")
    addr = ipaddress.ip_address(text)  # refuses leading zeros in IPv4 octets (py >= 3.9.5)
    if addr.version == 6 and addr.ipv4_mapped is not None:
        raise ValueError(f"IPv4-mapped IPv6 address {text!r} is not allowed")
    return addr


def parse_cidr(text: str) -> CIDR:
    """Parse like netip.ParsePrefix plus the Kubernetes 4-in-6 refusal; host bits are kept."""
    addr_text, slash, bits_text = text.rpartition("/")
    if not slash:
        raise ValueError(f"no '/' in {text!r}")
    if not bits_text.isdigit() or not bits_text.isascii() or (
        len(bits_text) > 1 and bits_text[0] == "0"
    ):
        raise ValueError(f"bad bits after slash: {bits_text!r}")
    if "%" in addr_text:
        raise ValueError("IPv6 zones cannot be present in a prefix")
    addr = parse_ip(addr_text)
    bits = int(bits_text)
    if bits > addr.max_prefixlen:
        raise ValueError(f"prefix length {bits} too large for IPv{addr.version}")
    return CIDR(addr, bits)


def _checked(fn: Callable[..., Any], name: str = "") -> Callable[..., Any]:
    """Turn Python exceptions into CEL errors (so `false && f(x)` still short-circuits)."""
    name = name or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except CELEvalError as ex:
            return ex
        except ValueError as ex:
            return _err(f"{name}: network address parse error: {ex}")
        except (TypeError, AttributeError, IndexError) as ex:
            return _err(f"{name}: {ex}")

    return wrapper


class _Namespace:
    """Stands for the `ip` / `sets` names in `ip.isCanonical(s)` and `sets.contains(a, b)`."""

    def __init__(self, name: str) -> None:
        self.name = name


IP_NS = _Namespace("ip")
SETS_NS = _Namespace("sets")


def _need(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"no such overload: {what} of {type(value).__name__}")
    return value


def _ip_of(value: Any) -> IP:
    if isinstance(value, IP):
        return value
    return IP(parse_ip(_need(value, str, "ip")))


def _cidr_of(value: Any) -> CIDR:
    if isinstance(value, CIDR):
        return value
    return parse_cidr(_need(value, str, "cidr"))


def _bool(fn: Callable[[Address], bool], name: str) -> Callable[[Any], Any]:
    return _checked(lambda ip: celtypes.BoolType(fn(_need(ip, IP, name).addr)), name)


def _is_ip(text: Any) -> Any:
    try:
        parse_ip(_need(text, str, "isIP"))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _is_cidr(text: Any) -> Any:
    try:
        parse_cidr(_need(text, str, "isCIDR"))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _ip(value: Any) -> Any:
    """`ip(string)` parses; `cidr.ip()` (the same name in cel-python) takes the address."""
    if isinstance(value, CIDR):
        return IP(value.addr)
    return IP(parse_ip(_need(value, str, "ip")))


def _contains(target: Any, *args: Any) -> Any:
    """Strings' `contains`, plus the `sets.contains(list, list)` namespaced function."""
    if target is SETS_NS:
        a, b = args
        return celtypes.BoolType(all(x in a for x in b))
    return base_functions["contains"](target, *args)


def _is_canonical(target: Any, text: Any) -> Any:
    _need(target, _Namespace, "isCanonical")
    return celtypes.BoolType(str(parse_ip(_need(text, str, "ip.isCanonical"))) == text)


def _string(value: Any) -> Any:
    if isinstance(value, IP | CIDR):
        return celtypes.StringType(str(value))
    return base_functions["string"](value)


def _join(items: Any, sep: Any = "") -> Any:
    _need(items, list, "join")
    return celtypes.StringType(str(sep).join(_need(i, str, "join item") for i in items))


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    _need(text, str, "substring")
    stop = len(text) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(text):
        raise IndexError(f"substring({start}, {end}) out of range for length {len(text)}")
    return celtypes.StringType(text[int(start) : stop])


def _index_of(text: Any, sub: Any, *rest: Any) -> Any:
    if isinstance(text, list):
        return celtypes.IntType(text.index(sub) if sub in text else -1)
    return celtypes.IntType(_need(text, str, "indexOf").find(sub, *(int(r) for r in rest)))


def _last_index_of(text: Any, sub: Any) -> Any:
    if isinstance(text, list):
        return celtypes.IntType(len(text) - 1 - text[::-1].index(sub) if sub in text else -1)
    return celtypes.IntType(_need(text, str, "lastIndexOf").rfind(sub))


_KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isIP": _is_ip,
    "isCIDR": _is_cidr,
    "ip": _ip,
    "cidr": lambda s: parse_cidr(_need(s, str, "cidr")),
    "family": lambda ip: celtypes.IntType(_need(ip, IP, "family").addr.version),
    "prefixLength": lambda c: celtypes.IntType(_need(c, CIDR, "prefixLength").bits),
    "masked": lambda c: CIDR(_need(c, CIDR, "masked").network().network_address, c.bits),
    "containsIP": lambda c, ip: celtypes.BoolType(
        _ip_of(ip).addr in _need(c, CIDR, "containsIP").network()
    ),
    "containsCIDR": lambda c, o: celtypes.BoolType(
        _cidr_of(o).addr in _need(c, CIDR, "containsCIDR").network()
        and c.bits <= _cidr_of(o).bits
    ),
    "isCanonical": _is_canonical,
    "contains": _contains,
    "intersects": lambda ns, a, b: celtypes.BoolType(
        _need(ns, _Namespace, "intersects") is SETS_NS and any(x in a for x in b)
    ),
    "equivalent": lambda ns, a, b: celtypes.BoolType(
        _need(ns, _Namespace, "equivalent") is SETS_NS
        and all(x in a for x in b)
        and all(x in b for x in a)
    ),
    "string": _string,
    "join": _join,
    "lowerAscii": lambda s: celtypes.StringType(_need(s, str, "lowerAscii").lower()),
    "upperAscii": lambda s: celtypes.StringType(_need(s, str, "upperAscii").upper()),
    "trim": lambda s: celtypes.StringType(_need(s, str, "trim").strip()),
    "split": lambda s, sep: celtypes.ListType(
        celtypes.StringType(p) for p in _need(s, str, "split").split(sep)
    ),
    "replace": lambda s, a, b: celtypes.StringType(_need(s, str, "replace").replace(a, b)),
    "substring": _substring,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
}
KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: _checked(fn, name) for name, fn in _KUBERNETES_FUNCTIONS.items()
}
for _name, _fn in {
    "isUnspecified": lambda a: a.is_unspecified,
    "isLoopback": lambda a: a.is_loopback,
    "isLinkLocalMulticast": lambda a: a
    in ipaddress.ip_network("224.0.0.0/24" if a.version == 4 else "ff02::/16"),
    "isLinkLocalUnicast": lambda a: a.is_link_local and not a.is_multicast,
    "isGlobalUnicast": lambda a: not (
        a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local
    )
    and a != ipaddress.IPv4Address("255.255.255.255"),
}.items():
    KUBERNETES_FUNCTIONS[_name] = _bool(_fn, _name)


class CELCompileError(ValueError):
    """A rule that does not parse; the CRD is broken, not the object."""


_ENV = celpy.Environment()


@functools.lru_cache(maxsize=4096)
def compile_rule(expression: str) -> celpy.Runner:
    """Parse and bind one rule once; the API server calls this on every write."""
    try:
        ast = _ENV.compile(expression)
    except celpy.CELParseError as ex:
        raise CELCompileError(f"cannot compile CEL {expression!r}: {ex}") from ex
    return _ENV.program(ast, functions=KUBERNETES_FUNCTIONS)


# Call styles cel-go would refuse when type-checking a rule at CRD creation; cel-python
# resolves `x.f()` and `f(x)` alike, so without this the lab would accept such CRDs.
GLOBAL_ONLY = frozenset({"isCIDR", "cidr", "isIP", "string", "int", "uint", "double", "bool",
                         "bytes", "dyn", "type", "duration", "timestamp"})
MEMBER_ONLY = frozenset({"masked", "prefixLength", "containsIP", "containsCIDR", "family",
                         "isUnspecified", "isLoopback", "isLinkLocalMulticast",
                         "isLinkLocalUnicast", "isGlobalUnicast", "isCanonical", "join",
                         "lowerAscii", "upperAscii", "trim", "split", "replace", "substring",
                         "indexOf", "lastIndexOf", "startsWith", "endsWith", "contains",
                         "intersects", "equivalent", "all", "exists", "exists_one", "map",
                         "filter"})
NOT_KUBERNETES = frozenset({"reduce"})  # cel-python extensions a real API server lacks


def call_style_problems(expression: str) -> list[str]:
    """Function calls in `expression` that Kubernetes' CEL environment would not compile."""
    problems = []
    for node in _ENV.compile(expression).iter_subtrees():
        names = [c for c in node.children if isinstance(c, Token) and c.type == "IDENT"]
        if node.data == "member_dot_arg" and names:
            name = names[0].value
            if name in GLOBAL_ONLY or name in NOT_KUBERNETES:
                problems.append(f"{name}() is not a method in Kubernetes CEL: write {name}(x)"
                                if name in GLOBAL_ONLY else f"{name}() is not Kubernetes CEL")
        elif node.data == "ident_arg" and names and names[0].value in MEMBER_ONLY:
            problems.append(f"{names[0].value}() is a method in Kubernetes CEL: write "
                            f"x.{names[0].value}(...)")
    return problems


def to_cel(value: Any) -> Any:
    """JSON data (as decoded from a request body) to CEL values."""
    return celpy.json_to_cel(value)


def evaluate(expression: str, variables: dict[str, Any]) -> Any:
    """Evaluate `expression` with already-converted variables (see `to_cel`).

    Returns the CEL value; raises CELEvalError for a runtime error (no such key, no such
    overload, a parse failure inside cidr(), ...), as cel-go would return an error value.
    """
    program = compile_rule(expression)
    activation = {"ip": IP_NS, "sets": SETS_NS, **variables}
    return program.evaluate(activation)
