"""Watch streams: `?watch=1` and `/watch/` paths, newline-delimited JSON events.

Semantics as kube-apiserver's: without a resourceVersion (or "0") the stream starts with
synthetic ADDED events for the current objects; with resourceVersion=N it replays the
retained history after N, or sends a single ERROR event carrying a 410 Expired Status when
N is older than the history; `sendInitialEvents=true` ends the initial ADDED events with a
BOOKMARK annotated `k8s.io/initial-events-end`; `allowWatchBookmarks` adds periodic
BOOKMARKs; `timeoutSeconds` ends the stream cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import errors, tables
from .resources import ResourceType
from .store import Gone, Obj, Store, Watcher, filtered_type


def _dumps(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, separators=(",", ":")) + "\n").encode()


async def serve(request: web.Request, store: Store, rt: ResourceType, ns: str | None,
                accept: Callable[[Obj], bool], output: Callable[[Obj], Obj],
                bookmark_interval: float, as_table: bool) -> web.StreamResponse:
    q = request.query
    rv_param = q.get("resourceVersion", "")
    try:
        timeout = float(q.get("timeoutSeconds") or 1800)
    except ValueError:
        raise errors.bad_request("invalid timeoutSeconds") from None
    bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
    initial_events = q.get("sendInitialEvents") == "true"

    def in_scope(obj: Obj) -> bool:
        return (ns is None or obj["metadata"].get("namespace", "") == ns) and accept(obj)

    # Everything from here to subscribe() is synchronous: no event can slip in between.
    backlog: list[tuple[str, Obj]] = []
    error: dict[str, Any] | None = None
    if rv_param in ("", "0") or initial_events:
        backlog = [("ADDED", o) for o in store.iter(rt.key, ns) if accept(o)]
    else:
        try:
            rv = int(rv_param)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv_param!r}") from None
        try:
            for _, t, o, old in store.events_since(rt.key, rv):
                seen = filtered_type(t, o, old, in_scope)
                if seen:
                    backlog.append((seen, o))
        except Gone as e:
            error = errors.gone(str(e)).status()
    watcher = Watcher(rt.key, in_scope)
    if error is None:
        store.subscribe(watcher)
    initial_end_rv = str(store.rv)

    resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                       "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    first = [True]

    def encode(etype: str, obj: Obj) -> bytes:
        out = output(obj)
        if as_table and etype != "BOOKMARK":
            t = tables.table(rt, [out], out["metadata"].get("resourceVersion", ""),
                             request.query.get("includeObject", "Metadata"))
            if not first[0]:
                t["columnDefinitions"] = []
            first[0] = False
            out = t
        return _dumps({"type": etype, "object": out})

    def bookmark(rv: str, initial_end: bool = False) -> bytes:
        md: dict[str, Any] = {"resourceVersion": rv}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return _dumps({"type": "BOOKMARK", "object": {"kind": rt.kind,
                                                       "apiVersion": rt.api_version,
                                                       "metadata": md}})

    try:
        if error is not None:
            await resp.write(_dumps({"type": "ERROR", "object": error}))
            return resp
        chunk = b"".join(encode(t, o) for t, o in backlog)
        if initial_events and bookmarks:
            chunk += bookmark(initial_end_rv, initial_end=True)
        if chunk:
            await resp.write(chunk)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + bookmark_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = min(deadline, next_bookmark if bookmarks else deadline) - now
            try:
                item = await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0.001))
            except TimeoutError:
                if bookmarks and time.monotonic() >= next_bookmark:
                    next_bookmark = time.monotonic() + bookmark_interval
                    if watcher.queue.empty():
                        await resp.write(bookmark(str(store.rv)))
                continue
            if item is None:
                break  # overflow: end the stream; the client re-lists
            parts = [encode(*item)]
            while not watcher.queue.empty() and len(parts) < 500:
                nxt = watcher.queue.get_nowait()
                if nxt is None:
                    break
                parts.append(encode(*nxt))
            await resp.write(b"".join(parts))
    except ConnectionResetError:
        return resp
    finally:
        store.unsubscribe(watcher)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await resp.write_eof()
    return resp
