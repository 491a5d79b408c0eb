"""In-memory object store with one global resourceVersion counter and a watch history.

Why its own module: every other part (verbs, watch streams, garbage collector, CRD
registry) needs the same three guarantees a real etcd-backed API server gives — a strictly
increasing resourceVersion shared by all kinds, a bounded per-kind event history for
`watch?resourceVersion=N` (older versions answer 410 Gone), and O(1) get/put by name so
latency stays flat as the number of objects grows. Stored objects are never mutated in
place: writers build a new dict, readers may share the stored one read-only.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Key = tuple[str, str]  # (group, plural)
Obj = dict[str, Any]
Listener = Callable[[Key, str, Obj, "Obj | None"], None]


class Gone(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


def filtered_type(etype: str, obj: Obj, old: Obj | None,
                  accept: Callable[[Obj], bool]) -> str | None:
    """The event a filtered watch sees: an object entering the selection is ADDED, one
    leaving it is DELETED (as kube-apiserver's watch cache does); None if unseen."""
    now_in = accept(obj)
    if etype != "MODIFIED" or old is None:
        return etype if now_in else None
    was_in = accept(old)
    if now_in:
        return "MODIFIED" if was_in else "ADDED"
    return "DELETED" if was_in else None


class Watcher:
    """One open watch: a queue of (type, object) fed by the store, and a filter."""

    def __init__(self, key: Key, accept: Callable[[Obj], bool], maxsize: int = 100_000) -> None:
        self.key = key
        self.accept = accept
        self.queue: asyncio.Queue[tuple[str, Obj] | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, etype: str, obj: Obj) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait((etype, obj))
        except asyncio.QueueFull:
            self.overflowed = True  # the stream closes; the client re-lists as after a 410
            self.close()

    def close(self) -> None:
        """Drop what is queued and end the stream (a None sentinel)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Store:
    """Objects by (group, plural) -> namespace -> name, plus history and watchers."""

    def __init__(self, history: int = 5000) -> None:
        self.rv = 0
        self.history_size = history
        self._objs: dict[Key, dict[str, dict[str, Obj]]] = {}
        self._history: dict[Key, deque[tuple[int, str, Obj, Obj | None]]] = {}
        self._evicted: dict[Key, int] = {}
        self._watchers: dict[Key, set[Watcher]] = {}
        self._by_uid: dict[str, tuple[Key, str, str]] = {}
        self._dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids
        self.listeners: list[Listener] = []

    # -- reads ------------------------------------------------------------------------
    def get(self, key: Key, ns: str, name: str) -> Obj | None:
        return self._objs.get(key, {}).get(ns, {}).get(name)

    def iter(self, key: Key, ns: str | None = None) -> Iterator[Obj]:
        """All objects of a kind, in one namespace (ns) or all (ns=None), in name order."""
        spaces = self._objs.get(key, {})
        if ns is not None:
            bucket = spaces.get(ns, {})
            for name in sorted(bucket):
                yield bucket[name]
            return
        for space in sorted(spaces):
            bucket = spaces[space]
            for name in sorted(bucket):
                yield bucket[name]

    def count(self, key: Key) -> int:
        return sum(len(b) for b in self._objs.get(key, {}).values())

    def kinds(self) -> list[Key]:
        return list(self._objs)

    def namespace_kinds(self, ns: str) -> list[Key]:
        """Kinds that have at least one object in namespace ns."""
        return [k for k, spaces in self._objs.items() if spaces.get(ns)]

    def by_uid(self, uid: str) -> Obj | None:
        loc = self._by_uid.get(uid)
        return self.get(*loc) if loc else None

    def locate(self, uid: str) -> tuple[Key, str, str] | None:
        return self._by_uid.get(uid)

    def dependents(self, owner_uid: str) -> list[tuple[Key, Obj]]:
        out = []
        for uid in list(self._dependents.get(owner_uid, ())):
            loc = self._by_uid.get(uid)
            if loc:
                obj = self.get(*loc)
                if obj is not None:
                    out.append((loc[0], obj))
        return out

    # -- writes -----------------------------------------------------------------------
    def put(self, key: Key, obj: Obj) -> Obj:
        """Store obj (a fresh dict the caller hands over) with the next resourceVersion."""
        md = obj["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        old = self.get(key, ns, name)
        self.rv += 1
        md["resourceVersion"] = str(self.rv)
        self._objs.setdefault(key, {}).setdefault(ns, {})[name] = obj
        uid = md.get("uid", "")
        self._index(uid, key, ns, name, old, obj)
        self._emit(key, "MODIFIED" if old is not None else "ADDED", obj, old)
        return obj

    def remove(self, key: Key, ns: str, name: str) -> Obj | None:
        """Delete an object; the DELETED event carries a new resourceVersion."""
        bucket = self._objs.get(key, {}).get(ns)
        if not bucket or name not in bucket:
            return None
        old = bucket.pop(name)
        if not bucket:
            del self._objs[key][ns]
        self.rv += 1
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self.rv)}}
        uid = old["metadata"].get("uid", "")
        self._by_uid.pop(uid, None)
        for ref in old["metadata"].get("ownerReferences") or ():
            self._dependents.get(ref.get("uid", ""), set()).discard(uid)
        self._emit(key, "DELETED", gone, old)
        return gone

    def _index(self, uid: str, key: Key, ns: str, name: str, old: Obj | None, new: Obj) -> None:
        if not uid:
            return
        self._by_uid[uid] = (key, ns, name)
        old_refs = {r.get("uid") for r in (old or {}).get("metadata", {}).get(
            "ownerReferences") or ()}
        new_refs = {r.get("uid") for r in new["metadata"].get("ownerReferences") or ()}
        for r in old_refs - new_refs:
            self._dependents.get(r or "", set()).discard(uid)
        for r in new_refs - old_refs:
            self._dependents.setdefault(r or "", set()).add(uid)

    def _emit(self, key: Key, etype: str, obj: Obj, old: Obj | None) -> None:
        hist = self._history.setdefault(key, deque())
        hist.append((self.rv, etype, obj, old))
        while len(hist) > self.history_size:
            self._evicted[key] = hist.popleft()[0]
        for w in list(self._watchers.get(key, ())):
            seen = filtered_type(etype, obj, old, w.accept)
            if seen:
                w.offer(seen, obj)
        for listener in self.listeners:
            listener(key, etype, obj, old)

    # -- watch --------------------------------------------------------------------------
    def events_since(self, key: Key, rv: int) -> list[tuple[int, str, Obj, Obj | None]]:
        """History events of a kind newer than rv; Gone when some were already evicted."""
        evicted = self._evicted.get(key, 0)
        if rv < evicted:
            hist = self._history.get(key)
            raise Gone(rv, hist[0][0] if hist else self.rv)
        return [e for e in self._history.get(key, ()) if e[0] > rv]

    def subscribe(self, w: Watcher) -> None:
        self._watchers.setdefault(w.key, set()).add(w)

    def unsubscribe(self, w: Watcher) -> None:
        self._watchers.get(w.key, set()).discard(w)

    def close_watchers(self) -> int:
        """End every open watch stream cleanly (server shutdown); returns how many."""
        n = 0
        for ws in self._watchers.values():
            for w in list(ws):
                w.close()
                n += 1
        return n

    # -- persistence -----------------------------------------------------------------------
    def dump(self, path: Path) -> None:
        """Write all objects as JSON (atomically, via a temporary file)."""
        data = {"resourceVersion": self.rv,
                "objects": [[list(k), o] for k in self._objs for o in self.iter(k)]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    def load(self, path: Path) -> list[tuple[Key, Obj]]:
        """Read a dump; objects keep their resourceVersions. Returns them for re-indexing."""
        data = json.loads(path.read_text())
        loaded = []
        for k, obj in data.get("objects", []):
            key = (k[0], k[1])
            md = obj["metadata"]
            self._objs.setdefault(key, {}).setdefault(md.get("namespace", ""), {})[
                md["name"]] = obj
            self._index(md.get("uid", ""), key, md.get("namespace", ""), md["name"], None, obj)
            loaded.append((key, obj))
        self.rv = int(data.get("resourceVersion", 0))
        # Watches from before the restart cannot be resumed: mark the history as evicted.
        for key in self._objs:
            self._evicted[key] = self.rv
        return loaded
