"""One source for the API: the hub chart ships slice/crds byte for byte; the package ships
every chart file.
"""

from __future__ import annotations

import glob
import io
import tarfile
import tomllib
from pathlib import Path

import helm_python
import pytest
import yaml

from wgslice.slice import charts

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "slice" / "crds"
CRD_FILES = sorted(p.name for p in CRD_DIR.glob("*.yaml") if p.name != "default-pool.yaml")


def test_chart_crds_are_slice_crds_byte_for_byte() -> None:
    chart_crds = charts.chart_dir(charts.HUB) / "crds"
    assert sorted(p.name for p in chart_crds.iterdir()) == CRD_FILES
    for name in CRD_FILES:
        assert (chart_crds / name).read_bytes() == (CRD_DIR / name).read_bytes(), name
    pool = charts.chart_dir(charts.HUB) / "files" / "default-pool.yaml"
    assert pool.read_bytes() == (CRD_DIR / "default-pool.yaml").read_bytes()


def test_helm_loads_the_same_crds() -> None:
    """What Helm itself reads from the chart (links dereferenced) is slice/crds."""
    with helm_python.Chart.load_archive(charts.archive(charts.HUB)) as chart:
        loaded = {Path(c["name"]).name: c["data"] for c in chart.crds}
    assert loaded == {n: (CRD_DIR / n).read_text() for n in CRD_FILES}
    rendered = [o for o in charts.render(charts.HUB, {}, "h", "wgslice-system")
                if o["kind"] == "CustomResourceDefinition"]
    assert rendered == [yaml.safe_load((CRD_DIR / n).read_text()) for n in CRD_FILES]


def test_archive_has_no_links_and_no_python() -> None:
    with tarfile.open(fileobj=io.BytesIO(charts.archive(charts.HUB)), mode="r:gz") as tar:
        members = tar.getmembers()
    assert all(m.isfile() for m in members)
    names = {m.name for m in members}
    assert "wgslice-hub/crds/slices.yaml" in names
    assert "wgslice-hub/Chart.yaml" in names
    assert not [n for n in names if n.endswith((".py", ".pyc"))]


@pytest.mark.parametrize("chart", charts.CHARTS)
def test_package_data_ships_every_chart_file(chart: str) -> None:
    """A file the patterns in pyproject miss would be absent from an installed wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["wgslice.charts"] == "charts"
    patterns = config["package-data"]["wgslice.charts"]
    base = ROOT / "charts"
    shipped = {Path(f) for p in patterns for f in glob.glob(str(base / p), recursive=True)}
    for path in (base / chart).rglob("*"):  # setuptools globs as glob.glob does: same here
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        assert path in shipped, f"{path.relative_to(base)} is not packaged"


def test_chart_versions_agree() -> None:
    versions = {yaml.safe_load((charts.chart_dir(c) / "Chart.yaml").read_text())["appVersion"]
                for c in charts.CHARTS}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert versions == {project}
