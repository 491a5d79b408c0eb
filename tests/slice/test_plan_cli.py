"""`wgslice plan`: the shipped examples plan; each class of bad input is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wgslice.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BAD = ROOT / "tests" / "fixtures" / "bad"
MEMBERS = EXAMPLES / "members.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_examples_plan_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "-f", str(EXAMPLES), "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    slices = {s["name"]: s for s in data["slices"]}
    assert set(slices) == {"shop", "payments", "analytics"}
    assert slices["payments"]["cidr"] == "10.230.0.0/22"
    assert [m["subnet"] for m in slices["payments"]["members"]] == [
        "10.230.0.0/25",
        "10.230.0.128/25",
        "10.230.1.0/25",
    ]  # east, north, west (sorted)
    assert {m["cluster"] for m in slices["shop"]["members"]} == {"east", "west"}
    tunnels = {(t["slice"], t["a"], t["b"]) for t in data["tunnels"]}
    assert ("shop", "east", "west") in tunnels
    assert sum(1 for t in tunnels if t[0] == "payments") == 2  # hub and spoke: n-1
    assert sum(1 for t in tunnels if t[0] == "analytics") == 2  # the chain's two links
    # the drawn CIDRs come from the default pool and overlap nothing
    import ipaddress

    nets = [ipaddress.ip_network(s["cidr"]) for s in data["slices"]]
    for i, a in enumerate(nets):
        assert not any(a.overlaps(b) for b in nets[i + 1 :])
    pool = ipaddress.ip_network("10.224.0.0/12")
    assert ipaddress.ip_network(slices["shop"]["cidr"]).subnet_of(pool)


def test_examples_plan_as_yaml_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-f", str(EXAMPLES), "-o", "yaml")
    assert code == 0
    as_yaml = yaml.safe_load(out)
    code, out_json, _ = run(capsys, "-f", str(EXAMPLES), "-o", "json")
    assert as_yaml == json.loads(out_json)
    code, table, _ = run(capsys, "-f", str(MEMBERS), "-f", str(EXAMPLES / "shop.yaml"))
    assert code == 0
    assert table.splitlines()[0].split() == [
        "SLICE",
        "CIDR",
        "POOL",
        "TOPOLOGY",
        "MEMBERS",
        "TUNNELS",
    ]
    assert "shop" in table and "east" in table and "west" in table


def test_same_input_same_plan(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    _, a, _ = run(capsys, *[x for f in files for x in ("-f", str(f))])
    _, b, _ = run(capsys, *[x for f in reversed(files) for x in ("-f", str(f))])
    assert a == b


BAD_CASES = {
    # file: (field named on stderr, words that say what is wrong or what to do)
    "malformed-cidr": ("spec.cidr", "not a valid CIDR"),
    "non-canonical-cidr": ("spec.cidr", "did you mean 10.230.0.0/16"),
    "prefix-too-small": ("spec.subnetPrefixLength", "members"),
    "unknown-member": ("spec.members[1]", "'south' does not exist"),
    "duplicate-members": ("spec.members[2]", "listed twice"),
    "duplicate-namespaces": ("spec.namespaces[1].name", "listed twice"),
    "hub-not-member": ("spec.topology.hub", "not a member"),
    "link-non-member": ("spec.topology.links[0].b", "not a member"),
    "empty-members": ("spec.members", "at least one member"),
    "bad-name-member": ("spec.members[0]", "DNS label"),
    "bad-slice-name": ("metadata.name", "DNS label"),
    "overlapping-explicit": ("spec.cidr", "first"),
    "overlaps-member-range": ("spec.cidr", "MemberCluster"),
    "namespace-two-slices": ("spec.namespaces[0].name", "already belongs to Slice alpha"),
    "pool-exhausted": ("spec", "tiny"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_refused_naming_object_and_field(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    field, words = BAD_CASES[case]
    code, out, err = run(capsys, "-f", str(MEMBERS), "-f", str(BAD / f"{case}.yaml"))
    assert code == 1
    assert out == ""  # nothing planned, nothing half-printed
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines, err
    assert any(f": {field}" in line and words in line and "Slice" in line for line in lines), err


def test_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-f", "/nonexistent/slices.yaml")
    assert code == 1
    assert "no such file or directory" in err


def test_invalid_yaml_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("kind: Slice\n  members: [a\n")
    code, _, err = run(capsys, "-f", str(bad))
    assert code == 1
    assert "broken.yaml: not valid YAML" in err


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`wgslice plan ... | head -1`: the writer sees EPIPE, exits 141, prints nothing."""
    import shutil
    import subprocess
    import sys

    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copy(examples / "members.yaml", tmp_path)
    (tmp_path / "many.yaml").write_text("".join(
        f"---\napiVersion: wgslice.io/v1alpha1\nkind: Slice\nmetadata: {{name: s{i}}}\n"
        f"spec: {{members: [east, west, north], namespaces: [{{name: ns{i}}}]}}\n"
        for i in range(250)))  # output far beyond a pipe's 64 KiB buffer
    proc = subprocess.Popen(
        [sys.executable, "-m", "wgslice", "plan", "-o", "json", "-f", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader leaves, like `head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
