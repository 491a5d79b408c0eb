"""The Helm charts, shipped inside the package so `wgslice join` and the lab find them.

Not Python code: `wgslice.slice.charts` locates the chart directories next to this file
(`wgslice-hub`, `wgslice-member`, `wgslice-hub-member`) and renders them with Helm's own
engine. See docs/charts.md.
"""
