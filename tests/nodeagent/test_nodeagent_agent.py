"""NodeAgent glue without root: a fake adapter that is the pure kernel model (`simulate`)."""

from __future__ import annotations

from wgslice.slice.nodeagent.agent import NodeAgent, StaticResolver
from wgslice.slice.nodeagent.diff import simulate
from wgslice.slice.nodeagent.state import NodeState, veth_name


class FakeAdapter:
    def __init__(self) -> None:
        self.state = NodeState()

    def observe(self, want: NodeState) -> NodeState:
        return self.state

    def apply(self, ops) -> list[str]:
        self.state = simulate(self.state, ops)
        return []


CFG = {"slice": "red", "cidr": "10.224.0.0/20", "subnet": "10.224.0.0/24", "table": 1001,
       "vni": 1001, "gatewayNode": "n0", "gatewayAddress": "10.224.0.1",
       "nodes": {"n0": {"nodeIP": "10.10.0.10", "address": "10.224.0.254"},
                 "n1": {"nodeIP": "10.10.0.11", "address": "10.224.0.253"}},
       "namespaces": ["red"]}


def test_reconcile_twice_then_detach(tmp_path):
    netns = tmp_path / "pod-a"
    netns.write_text("")  # stands in for a bind-mounted netns file
    fake = FakeAdapter()
    agent = NodeAgent("n0", adapter=fake, resolver=StaticResolver({"u-a": str(netns)}))
    pods = [{"namespace": "red", "name": "a", "uid": "u-a", "node": "n0",
             "sliceAddress": "10.224.0.2"},
            {"namespace": "red", "name": "b", "uid": "u-b", "node": "n1",
             "sliceAddress": "10.224.0.3"}]
    rep = agent.reconcile_once([CFG], pods)
    assert rep.changed and rep.pending == 0 and rep.errors == ()
    assert rep.attached == {"red": ("red/a",)}
    assert veth_name("red", "u-a") in {lk.name for lk in fake.state.links}
    assert not agent.reconcile_once([CFG], pods).changed
    rep = agent.reconcile_once([CFG], pods[1:])
    assert any(line.startswith("DelLink") for line in rep.applied)
    assert veth_name("red", "u-a") not in {lk.name for lk in fake.state.links}


def test_pod_whose_netns_is_missing_waits(tmp_path):
    agent = NodeAgent("n0", adapter=FakeAdapter(),
                      resolver=StaticResolver({"u-a": str(tmp_path / "gone")}))
    rep = agent.reconcile_once([CFG], [{"namespace": "red", "name": "a", "uid": "u-a",
                                        "node": "n0", "sliceAddress": "10.224.0.2"}])
    assert rep.attached == {"red": ()}
    assert any("network namespace not known" in p for p in rep.problems)
