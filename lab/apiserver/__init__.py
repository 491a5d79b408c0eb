"""The lab's Kubernetes API server: one per emulated cluster, used by real clients unchanged.

Start one in-process (on its own loop):

    from wgslice.lab.apiserver import ApiServer, run_in_thread
    st = run_in_thread(cluster_name="east", host="127.0.0.1", port=0, admin_token="t")
    st.server.write_kubeconfig("east.kubeconfig")
    token = st.call(st.server.mint_token, "default", "default")
    st.stop()

or as a process: `python -m wgslice.lab.apiserver --name east --port 6443 --token-file F`.
See docs/lab-apiserver.md for what it implements.
"""

from .auth import mint_token, token_claims
from .server import (
    ApiServer,
    ServerThread,
    kubeconfig,
    run_in_thread,
    serving,
    write_kubeconfig,
)

__all__ = [
    "ApiServer",
    "ServerThread",
    "kubeconfig",
    "mint_token",
    "run_in_thread",
    "serving",
    "token_claims",
    "write_kubeconfig",
]
