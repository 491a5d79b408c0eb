"""Watch: ?watch=1 and /watch/ paths, resourceVersion resume, timeoutSeconds, bookmarks,
410 Gone as an ERROR event, sendInitialEvents, and the official client's Watch."""

from __future__ import annotations

import threading
import time

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from labapi_helpers import Raw, start

CM = "/api/v1/namespaces/{ns}/configmaps"


def test_watch_from_resource_version_replays_changes(raw, ns):
    _, lst = raw("GET", CM.format(ns=ns))
    rv = lst["metadata"]["resourceVersion"]
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "w", "labels": {"a": "b"}}})
    raw("PATCH", CM.format(ns=ns) + "/w", {"data": {"k": "v"}}, "application/merge-patch+json")
    raw("DELETE", CM.format(ns=ns) + "/w")
    events = raw.watch(CM.format(ns=ns) + f"?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_path_without_version_starts_with_current_objects(raw, ns):
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "x1"}})
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "x2"}})
    events = raw.watch(f"/api/v1/watch/namespaces/{ns}/configmaps?timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "x1"), ("ADDED", "x2")]
    one = raw.watch(f"/api/v1/watch/namespaces/{ns}/configmaps/x2?timeoutSeconds=1")
    assert [e["object"]["metadata"]["name"] for e in one] == ["x2"]


def test_watch_live_events_with_selector(raw, ns):
    got: list = []

    def reader() -> None:
        got.extend(raw.watch(CM.format(ns=ns) + "?watch=true&labelSelector=w%3D1"
                             "&timeoutSeconds=2&resourceVersion=" + rv))

    _, lst = raw("GET", CM.format(ns=ns))
    rv = lst["metadata"]["resourceVersion"]
    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "in", "labels": {"w": "1"}}})
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "out", "labels": {"w": "2"}}})
    t.join(5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "in")]


def test_bookmarks_and_timeout(raw, ns):
    _, lst = raw("GET", CM.format(ns=ns))
    t0 = time.monotonic()
    events = raw.watch(CM.format(ns=ns) + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=1"
                       f"&resourceVersion={lst['metadata']['resourceVersion']}")
    assert 0.9 < time.monotonic() - t0 < 3
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert marks and marks[0]["object"]["kind"] == "ConfigMap"
    assert int(marks[0]["object"]["metadata"]["resourceVersion"]) >= int(
        lst["metadata"]["resourceVersion"])


def test_send_initial_events_ends_with_bookmark(raw, ns):
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "i1"}})
    events = raw.watch(CM.format(ns=ns) + "?watch=1&sendInitialEvents=true&allowWatchBookmarks="
                       "true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
    assert events[0]["type"] == "ADDED"
    end = events[1]
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_too_old_resource_version_gives_410_error_event():
    st = start(cluster_name="small-history", history=5)
    try:
        raw = Raw(st.server)
        for i in range(10):
            raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"c{i}"}})
        events = raw.watch("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1"
                           "&timeoutSeconds=1")
        assert len(events) == 1 and events[0]["type"] == "ERROR"
        status = events[0]["object"]
        assert status["kind"] == "Status" and status["code"] == 410
        assert status["reason"] == "Expired"
        assert status["message"].startswith("too old resource version: 1")
    finally:
        st.stop()


def test_official_client_watch(api_client, raw, ns):
    core = k8s.CoreV1Api(api_client)
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "o1"}})
    w = k8s_watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=1):
        seen.append((ev["type"], ev["object"].metadata.name))
    assert ("ADDED", "o1") in seen


def test_watch_as_table_for_kubectl_get_watch(raw, ns):
    raw("POST", CM.format(ns=ns), {"metadata": {"name": "t1"}})
    with raw.open("GET", CM.format(ns=ns) + "?watch=1&timeoutSeconds=1",
                  headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as r:
        import json
        events = [json.loads(x) for x in r.read().decode().splitlines() if x]
    table = events[0]["object"]
    assert events[0]["type"] == "ADDED" and table["kind"] == "Table"
    assert table["rows"][0]["cells"][0] == "t1"


def test_filtered_watch_sees_objects_enter_and_leave_the_selection(raw, ns):
    """A kubelet watching spec.nodeName=n1 sees a pod bound to it as ADDED, and a label
    watch sees an object whose label stops matching as DELETED (live and replayed)."""
    path = f"/api/v1/namespaces/{ns}/pods"
    _, lst = raw("GET", path)
    rv = lst["metadata"]["resourceVersion"]
    raw("POST", path, {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {
        "containers": [{"name": "c", "image": "i"}]}})
    raw("POST", path + "/p/binding", {"target": {"kind": "Node", "name": "n1"}})
    raw("PATCH", path + "/p", {"metadata": {"labels": {"a": "2"}}},
        "application/merge-patch+json")
    by_node = raw.watch(f"{path}?watch=1&fieldSelector=spec.nodeName%3Dn1&timeoutSeconds=1"
                        f"&resourceVersion={rv}")
    assert [e["type"] for e in by_node] == ["ADDED", "MODIFIED"]
    by_label = raw.watch(f"{path}?watch=1&labelSelector=a%3D1&timeoutSeconds=1"
                         f"&resourceVersion={rv}")
    assert [e["type"] for e in by_label] == ["ADDED", "MODIFIED", "DELETED"]


def test_concurrent_writers_one_ordered_event_stream(raw, ns):
    """Four clients write at once; one watch sees every write exactly once, in strictly
    increasing resourceVersion order, ending at each object's final version."""
    _, lst = raw("GET", CM.format(ns=ns))
    rv0 = lst["metadata"]["resourceVersion"]

    def writer(i: int) -> None:
        for j in range(15):
            name = f"w{i}-{j}"
            raw("POST", CM.format(ns=ns), {"metadata": {"name": name}})
            raw("PATCH", CM.format(ns=ns) + f"/{name}", {"data": {"j": str(j)}},
                "application/merge-patch+json")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    events = raw.watch(CM.format(ns=ns) + f"?watch=1&resourceVersion={rv0}&timeoutSeconds=1")
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert len(events) == 4 * 15 * 2 and rvs == sorted(set(rvs))
    last = {e["object"]["metadata"]["name"]: e["object"]["metadata"]["resourceVersion"]
            for e in events}
    _, final = raw("GET", CM.format(ns=ns))
    assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
            for o in final["items"]} == last
