"""The member chart ships the upstream multicluster.x-k8s.io CRDs unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wgslice.slice import charts

CRDS = Path(__file__).resolve().parents[2] / "charts" / "wgslice-member" / "crds"
MODULE = Path("/root/go/pkg/mod/sigs.k8s.io/mcs-api@v0.5.2/config/crd")


@pytest.mark.parametrize("kind", ["serviceexports", "serviceimports"])
def test_same_as_the_module(kind: str) -> None:
    ours = yaml.safe_load((CRDS / f"multicluster.x-k8s.io_{kind}.yaml").read_text())
    assert ours["metadata"]["name"] == f"{kind}.multicluster.x-k8s.io"
    upstream = MODULE / f"multicluster.x-k8s.io_{kind}.yaml"
    if not upstream.exists():
        pytest.skip("sigs.k8s.io/mcs-api v0.5.2 not in the Go module cache")
    assert ours == yaml.safe_load(upstream.read_text())


def test_member_chart_installs_them_first() -> None:
    objs = charts.render(charts.MEMBER, {"member": "east"}, "w", "wgslice-system")
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
    assert {"serviceexports.multicluster.x-k8s.io",
            "serviceimports.multicluster.x-k8s.io"} <= set(names)
    first_other = next(i for i, o in enumerate(objs)
                       if o["kind"] not in ("CustomResourceDefinition", "Namespace"))
    assert all(o["kind"] in ("CustomResourceDefinition", "Namespace") for o in objs[:first_other])
