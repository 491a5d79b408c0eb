"""`wgslice plan` on arbitrary documents: never a traceback, always 0 or 1, and every error
line names a source and says what to do (issue 12). Runs in CI with the unit tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wgslice.cli import main

FIELDS = [
    "apiVersion", "kind", "metadata", "name", "spec", "status", "members", "namespaces",
    "cidr", "cidrs", "pool", "prefixLength", "subnetPrefixLength", "slicePrefixLength",
    "topology", "type", "hub", "links", "a", "b", "isolation", "enabled", "mtu", "default",
    "podCIDRs", "serviceCIDRs", "reservedCIDRs", "podsPerSlice", "items", "subnet",
    "allowDocumentationRanges", "allowedNamespaces", "gatewayEndpoint",
]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.sampled_from(["east", "west", "10.224.0.0/16", "fe80::/64", "127.0.0.0/16", "kube-x",
                     "wgslice-system", "10.0.0.1/8", "FullMesh", "HubSpoke", "Custom", "",
                     "wgslice.io/v1alpha1", "Slice", "OverlayPool", "MemberCluster", "List"]),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), inner,
                        max_size=5),
    ),
    max_leaves=25,
)
DOCS = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["wgslice.io/v1alpha1", "wgslice.io/v1", "v1",
                                       "wgslice.com/v1alpha1"]),
        "kind": st.sampled_from(["Slice", "OverlayPool", "MemberCluster", "List", "Namespace",
                                 "MemberSlice", "Slcie"]),
    },
    optional={"metadata": st.one_of(VALUES, st.fixed_dictionaries({"name": SCALARS})),
              "spec": VALUES, "status": VALUES, "items": VALUES},
)
ERROR_LINE = re.compile(r"^error: \S.*: .+")


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(docs=st.lists(st.one_of(DOCS, VALUES), min_size=1, max_size=3), raw=st.binary(max_size=40))
def test_plan_never_crashes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            docs: list[object], raw: bytes) -> None:
    good = tmp_path / "docs.yaml"
    good.write_text(yaml.safe_dump_all(docs))
    for path in (good, tmp_path / "raw.yaml"):
        if path.name == "raw.yaml":
            path.write_bytes(raw)
        code = main(["plan", "-f", str(path)])
        _out, err = capsys.readouterr()
        assert code in (0, 1), err
        assert "Traceback" not in err
        for line in err.splitlines():
            if line.startswith("error:"):
                assert ERROR_LINE.match(line), line
                assert ": : " not in line, line  # no empty field name
