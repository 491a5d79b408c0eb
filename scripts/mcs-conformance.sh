#!/usr/bin/env bash
# Runs the sigs.k8s.io/mcs-api conformance suite (built from its Go module by
# `scripts/build-upstream.sh mcs-conformance`) against the running lab's member clusters.
# Not part of scripts/test.sh yet: the module is not served by this machine's Go module
# proxy, and the suite needs pods/exec and real socat/netshoot images, which the lab does
# not provide (docs/mcs.md, "The MCS conformance suite").
#
# Usage: scripts/mcs-conformance.sh [extra ginkgo flags...]   (a lab must be up: wgslice lab up)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-upstream.sh mcs-conformance
bin=${WGSLICE_UPSTREAM:-/var/cache/wgslice/upstream}/bin/mcs-conformance.test
venv=${WGSLICE_VENV:-$(pwd)/.venv}
kubeconfig=$("$venv/bin/wgslice" lab kubeconfig)
contexts=$(KUBECONFIG=$kubeconfig "$venv/bin/kubectl" config get-contexts -o name | grep -v '^hub$' | paste -sd, -)
mkdir -p artifacts
exec "$bin" --kubeconfig "$kubeconfig" --contexts "$contexts" \
  --project wgslice --organization wgslice --url https://github.com/wgslice/wgslice \
  --ginkgo.v --ginkgo.junit-report "$(pwd)/artifacts/mcs-conformance.xml" "$@"
