"""Fixtures for the chart tests: each chart rendered once per session with Helm's engine."""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import CUSTOM, DEFAULTS, NS

from wgslice.slice import charts


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """chart -> manifests with the least values."""
    return {c: charts.render(c, v, rel, NS) for c, (rel, v) in DEFAULTS.items()}


@pytest.fixture(scope="session")
def rendered_custom() -> dict[str, list[dict[str, Any]]]:
    """chart -> manifests with every knob turned."""
    return {c: charts.render(c, CUSTOM[c], DEFAULTS[c][0], "wgslice") for c in charts.CHARTS}

