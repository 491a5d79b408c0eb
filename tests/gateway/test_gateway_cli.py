"""`wgslice gateway check-config` and argument handling (no root needed)."""

from __future__ import annotations

import yaml

from wgslice.cli import main
from wgslice.gateway.keys import PrivateKey


def write(tmp_path, cfg):
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def good():
    return {"slice": "shop", "member": "east", "cidr": "10.224.0.0/20",
            "subnet": "10.224.0.0/24", "peers": [{"member": "west",
            "subnets": ["10.224.1.0/24"], "publicKey": PrivateKey.generate().public_key,
            "endpoint": "198.51.100.2:51820"}]}


def test_check_config_ok(tmp_path, capsys):
    assert main(["gateway", "check-config", str(write(tmp_path, good()))]) == 0
    assert "1 peers" in capsys.readouterr().out


def test_check_config_reports_the_bad_field(tmp_path, capsys):
    cfg = good()
    cfg["peers"][0]["endpoint"] = "198.51.100.2"
    assert main(["gateway", "check-config", str(write(tmp_path, cfg))]) == 1
    err = capsys.readouterr().err
    assert "peers[0] (west).endpoint" in err and "Traceback" not in err


def test_check_config_missing_file_and_bad_yaml(tmp_path, capsys):
    assert main(["gateway", "check-config", str(tmp_path / "nope.yaml")]) == 1
    (tmp_path / "bad.yaml").write_text("slice: [")
    assert main(["gateway", "check-config", str(tmp_path / "bad.yaml")]) == 1
    assert "not valid YAML" in capsys.readouterr().err
