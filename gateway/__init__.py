"""wgslice."""
