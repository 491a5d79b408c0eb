#!/usr/bin/env bash
# Builds the upstream programs the lab and the gateway stand on, from their own Go modules at
# the versions pinned in scripts/upstream.env, once per machine:
#   kube-apiserver, kube-controller-manager, kube-scheduler  (k8s.io/kubernetes)
#   etcd                                                     (go.etcd.io/etcd/server/v3)
#   wireguard-go                                             (golang.zx2c4.com/wireguard)
#   coredns                                                  (github.com/coredns/coredns)
#   mcs-conformance.test (opt-in)                            (sigs.k8s.io/mcs-api/conformance)
# Each lands in $WGSLICE_UPSTREAM (default /var/cache/wgslice/upstream)/<name>-<version>/ and
# is linked from $WGSLICE_UPSTREAM/bin/<program>. A program whose pinned version already has
# a binary is not rebuilt. Go's module and build caches stay warm between runs.
#
# k8s.io/kubernetes names its staging modules (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0
# with replace directives to ./staging; a consumer maps each of them to the published version
# of the same release (v1.37.2 -> v0.37.2). The list is read from the release's own go.mod.
#
# Usage: build-upstream.sh [kubernetes|etcd|wireguard-go|coredns|mcs-conformance ...]
#        (default: all but mcs-conformance)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=upstream.env
. "$here/upstream.env"
out=${WGSLICE_UPSTREAM:-/var/cache/wgslice/upstream}
mkdir -p "$out/bin" "$out/src"
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# Go as the machine installs it, even from a shell whose PATH lacks it (CI, sudo)
case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) PATH="$PATH:/usr/local/go/bin" ;; esac
export GOPROXY=${GOPROXY:-https://proxy.golang.org}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
have_go() {
  command -v go >/dev/null 2>&1 || {
    echo "build-upstream: no 'go' on PATH; install Go 1.26 (Debian: apt-get install golang-go is too old)" >&2
    exit 1
  }
}

# link NAME DIR: expose DIR/NAME as $out/bin/NAME.
link() { ln -sfn "$2/$1" "$out/bin/$1"; }

# timed CMD...: run and report wall time and peak memory of the build (GNU time if present).
timed() {
  local t0=$SECONDS
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '    build: %e s wall, %M KiB peak RSS' "$@"
  else
    "$@"
  fi
  say "  done in $((SECONDS - t0)) s"
}

build_kubernetes() {
  local v=$K8S_VERSION dir="$out/kubernetes-$K8S_VERSION"
  local progs=(kube-apiserver kube-controller-manager kube-scheduler)
  if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/kube-controller-manager" ] && [ -x "$dir/kube-scheduler" ]; then
    for p in "${progs[@]}"; do link "$p" "$dir"; done
    return
  fi
  have_go
  say "building Kubernetes $v control plane (${progs[*]}) from k8s.io/kubernetes; first time: 15-30 min on 2 cores"
  local src="$out/src/kubernetes-$v"
  mkdir -p "$src" "$dir.tmp"
  local staging=v0.${v#v1.}
  (
    cd "$src"
    [ -f go.mod ] || go mod init wgslice.local/build/kubernetes >/dev/null 2>&1
    say "  resolving k8s.io/kubernetes@$v and its staging modules at $staging"
    go mod download -json "k8s.io/kubernetes@$v" >kubernetes.json
    local gomod
    gomod=$(python3 -c 'import json,sys; print(json.load(open("kubernetes.json"))["GoMod"])')
    # every `k8s.io/X => ./staging/src/k8s.io/X` of the release becomes `k8s.io/X => k8s.io/X vSTAGING`
    local reps
    reps=$(grep -oE '^\s*k8s\.io/[A-Za-z0-9._/-]+ => \./staging/src/k8s\.io/[A-Za-z0-9._/-]+' "$gomod" \
      | awk '{print $1}' | sort -u)
    local args=()
    for m in $reps; do args+=("-replace=$m=$m@$staging"); done
    go mod edit "${args[@]}" "-require=k8s.io/kubernetes@$v"
    local gov
    gov=$(awk '$1=="go"{print $2; exit}' "$gomod")
    go mod edit -go="$gov"
    say "  downloading modules"
    go mod tidy -e >/dev/null 2>&1 || true
    # the main module imports nothing, so name what the build needs explicitly
    printf 'package build\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler/app"\n)\n' >tools.go
    go mod tidy
    local pkg=k8s.io/component-base/version
    local ld="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2) -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$v"
    say "  compiling (go build -p ${GOMAXPROCS:-$(nproc)})"
    timed go build -ldflags "$ld" -o "$dir.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
  )
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  for p in "${progs[@]}"; do link "$p" "$dir"; done
}

build_etcd() {
  local v=$ETCD_VERSION dir="$out/etcd-$ETCD_VERSION"
  if [ -x "$dir/etcd" ]; then link etcd "$dir"; return; fi
  have_go
  say "building etcd $v from go.etcd.io/etcd/server/v3"
  local src="$out/src/etcd-$v"
  mkdir -p "$src" "$dir.tmp"
  (
    cd "$src"
    [ -f go.mod ] || go mod init wgslice.local/build/etcd >/dev/null 2>&1
    go mod edit "-require=go.etcd.io/etcd/server/v3@$v"
    printf 'package build\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' >tools.go
    go mod tidy
    timed go build -ldflags "-s -w" -o "$dir.tmp/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  link etcd "$dir"
}

build_wireguard_go() {
  local v=$WIREGUARD_GO_VERSION dir="$out/wireguard-go-$WIREGUARD_GO_VERSION"
  if [ -x "$dir/wireguard-go" ]; then link wireguard-go "$dir"; return; fi
  have_go
  say "building wireguard-go $v from golang.zx2c4.com/wireguard"
  local src="$out/src/wireguard-go-$v"
  mkdir -p "$src" "$dir.tmp"
  (
    cd "$src"
    [ -f go.mod ] || go mod init wgslice.local/build/wireguard-go >/dev/null 2>&1
    go mod edit "-require=golang.zx2c4.com/wireguard@$v"
    printf 'package build\n\nimport _ "golang.zx2c4.com/wireguard/device"\n' >tools.go
    go mod tidy
    timed go build -ldflags "-s -w" -o "$dir.tmp/wireguard-go" golang.zx2c4.com/wireguard
  )
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  link wireguard-go "$dir"
}

# CoreDNS, stock: since v1.12 its kubernetes plugin serves the MCS clusterset.local zone
# itself (`multicluster clusterset.local`, reading ServiceImports and the EndpointSlices
# labelled multicluster.kubernetes.io/service-name), so the module's own main package is
# the whole program: no custom plugin list is needed.
build_coredns() {
  local v=$COREDNS_VERSION dir="$out/coredns-$COREDNS_VERSION"
  if [ -x "$dir/coredns" ]; then link coredns "$dir"; return; fi
  have_go
  say "building CoreDNS $v from github.com/coredns/coredns"
  local src="$out/src/coredns-$v"
  mkdir -p "$src" "$dir.tmp"
  (
    cd "$src"
    [ -f go.mod ] || go mod init wgslice.local/build/coredns >/dev/null 2>&1
    go mod edit "-require=github.com/coredns/coredns@$v"
    printf 'package build\n\nimport _ "github.com/coredns/coredns/coremain"\nimport _ "github.com/coredns/coredns/core/plugin"\n' >tools.go
    go mod tidy
    timed go build -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$v" \
      -o "$dir.tmp/coredns" github.com/coredns/coredns
  )
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  link coredns "$dir"
}

# The sigs.k8s.io/mcs-api conformance suite (Ginkgo), compiled into a test binary. Opt-in
# (`build-upstream.sh mcs-conformance`): it is its own module, sigs.k8s.io/mcs-api/conformance,
# with no tagged release, so it is pinned by pseudo-version; a Go module proxy that does not
# serve that module (the one on this project's build machines answers 403) makes this a
# clear error, not a silent skip. docs/mcs.md says how CI runs it and what it needs.
build_mcs_conformance() {
  local v=$MCS_CONFORMANCE_VERSION dir="$out/mcs-conformance-$MCS_CONFORMANCE_VERSION"
  if [ -x "$dir/mcs-conformance.test" ]; then link mcs-conformance.test "$dir"; return; fi
  have_go
  say "building the MCS conformance suite $v from sigs.k8s.io/mcs-api/conformance"
  local src="$out/src/mcs-conformance-$v"
  mkdir -p "$src" "$dir.tmp"
  (
    cd "$src"
    [ -f go.mod ] || go mod init wgslice.local/build/mcs-conformance >/dev/null 2>&1
    if ! go mod download "sigs.k8s.io/mcs-api/conformance@$v"; then
      echo "build-upstream: the Go module proxy ($GOPROXY) does not serve" \
        "sigs.k8s.io/mcs-api/conformance@$v; use a proxy that does (GOPROXY=...)" >&2
      rmdir "$dir.tmp" 2>/dev/null || true
      exit 3
    fi
    go mod edit "-require=sigs.k8s.io/mcs-api/conformance@$v"
    printf 'package build\n\nimport _ "sigs.k8s.io/mcs-api/conformance"\n' >tools.go
    go mod tidy
    timed go test -c -o "$dir.tmp/mcs-conformance.test" sigs.k8s.io/mcs-api/conformance
  )
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  link mcs-conformance.test "$dir"
}

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(wireguard-go etcd kubernetes coredns)
for w in "${what[@]}"; do
  case $w in
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    wireguard-go) build_wireguard_go ;;
    coredns) build_coredns ;;
    mcs-conformance) build_mcs_conformance ;;
    *) echo "build-upstream: unknown program '$w' (kubernetes, etcd, wireguard-go, coredns, mcs-conformance)" >&2; exit 2 ;;
  esac
done
