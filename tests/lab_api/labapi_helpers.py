"""Helpers for the lab API conformance tests: raw HTTP client, server starter, CRD maker."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from wgslice.lab.apiserver import ApiServer, ServerThread, run_in_thread

ADMIN = "admin-token-for-tests"


class Raw:
    """Minimal HTTP client: (status, decoded JSON or text) for any method/body/type."""

    def __init__(self, server: ApiServer, token: str | None = ADMIN) -> None:
        self.base = server.url
        self.token = token
        self.ctx = ssl.create_default_context(cadata=server.ca_pem.decode()) \
            if server.ca_pem else None

    def with_token(self, token: str | None) -> Raw:
        other = Raw.__new__(Raw)
        other.base, other.ctx, other.token = self.base, self.ctx, token
        return other

    def open(self, method: str, path: str, body: Any = None,
             ctype: str = "application/json", headers: dict[str, str] | None = None,
             timeout: float = 10) -> Any:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        return urllib.request.urlopen(req, context=self.ctx, timeout=timeout)

    def __call__(self, method: str, path: str, body: Any = None,
                 ctype: str = "application/json", headers: dict[str, str] | None = None
                 ) -> tuple[int, Any]:
        try:
            with self.open(method, path, body, ctype, headers) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def watch(self, path: str, timeout: float = 10) -> list[dict[str, Any]]:
        """Read a watch stream (which must end by timeoutSeconds) into a list of events."""
        with self.open("GET", path, timeout=timeout) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line]


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll cond every 20 ms until true or timeout (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def start(**kwargs: Any) -> ServerThread:
    kwargs.setdefault("admin_token", ADMIN)
    kwargs.setdefault("bookmark_interval", 0.3)
    return run_in_thread(**kwargs)


def crd(group: str = "wgslice.io", kind: str = "Widget", scope: str = "Namespaced",
        schema: dict[str, Any] | None = None, columns: list[dict[str, Any]] | None = None,
        status: bool = True) -> dict[str, Any]:
    plural = kind.lower() + "s"
    ver: dict[str, Any] = {
        "name": "v1alpha1", "served": True, "storage": True,
        "schema": {"openAPIV3Schema": schema or {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if status:
        ver["subresources"] = {"status": {}}
    if columns:
        ver["additionalPrinterColumns"] = columns
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope, "versions": [ver],
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                               "listKind": kind + "List",
                               "shortNames": [kind.lower()[:3] + "x"]}}}


CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
