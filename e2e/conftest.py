"""Shared by every e2e test: the order check.

Each e2e test sets up what it needs (module fixtures that are idempotent, or fixtures that
bring shared state to where the test starts), so it passes alone and in any order
(docs/testing.md). ``WGSLICE_E2E_ORDER=reverse`` runs the tests of each e2e file in reverse
order (the files keep theirs), which a test relying on an earlier one fails:

    WGSLICE_E2E_ORDER=reverse python -m pytest -q e2e/nodeagent
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ORDER_VARIABLE = "WGSLICE_E2E_ORDER"
ORDERS = ("file", "reverse")
E2E = Path(__file__).resolve().parent


def pytest_report_header(config: pytest.Config) -> str | None:
    order = os.environ.get(ORDER_VARIABLE, "")
    return f"e2e order: {order}" if order else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = os.environ.get(ORDER_VARIABLE, "") or "file"
    if order not in ORDERS:
        raise pytest.UsageError(f"{ORDER_VARIABLE}={order!r}: use one of {', '.join(ORDERS)}")
    if order == "file":
        return
    # Each e2e file's tests go into the places its tests held, last first; tests of other
    # files (tests/ among them) keep their places.
    places: dict[Path, list[int]] = {}
    for i, item in enumerate(items):
        path = Path(item.path).resolve()
        if path.is_relative_to(E2E):
            places.setdefault(path, []).append(i)
    for indices in places.values():
        reordered = [items[i] for i in reversed(indices)]
        for i, item in zip(indices, reordered, strict=True):
            items[i] = item
