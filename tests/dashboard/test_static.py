"""The pages load nothing from outside the dashboard (the machines are offline)."""

from __future__ import annotations

import re
from importlib import resources


def test_static_files_load_nothing_external() -> None:
    static = resources.files("wgslice.slice.dashboard") / "static"
    for name in ("index.html", "app.js", "app.css"):
        text = (static / name).read_text()
        urls = set(re.findall(r"https?://[^\s\"')]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)
