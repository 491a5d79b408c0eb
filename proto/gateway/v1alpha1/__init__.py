"""Generated gRPC code for the gateway status API (see proto/generate.py)."""
