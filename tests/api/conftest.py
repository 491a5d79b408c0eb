"""Fixtures for the API tests (helpers live in api_helpers.py, a unique module name)."""

from api_helpers import check, crds

__all__ = ["check", "crds"]
