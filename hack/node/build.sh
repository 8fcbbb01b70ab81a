#!/usr/bin/env bash
# Builds (once) and caches the binaries of the real test node, from the Go module proxy:
#   kubelet, kube-scheduler, kube-proxy   the same wrapper module and version as
#                                         kube-apiserver (hack/controlplane/kubernetes)
#   crictl                                sigs.k8s.io/cri-tools (hack/node/cri-tools)
# into $PAGERBRIDGE_TOOLS_DIR (default ~/.cache/pagerbridge/tools), linked as
# <tools>/current/<name>. Prints the tools directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cp_dir="$(cd "$here/../controlplane" && pwd)"
tools="${PAGERBRIDGE_TOOLS_DIR:-$HOME/.cache/pagerbridge/tools}"
k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$cp_dir/kubernetes/go.mod")"
cri_version="$(awk '$1 == "require" && $2 == "sigs.k8s.io/cri-tools" {print $3}' "$here/cri-tools/go.mod")"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"

mkdir -p "$tools"
log() { echo "[node] $*" >&2; }
exec 9>"$tools/.build-node.lock"
flock 9

# shellcheck source=../go-toolchain.sh
source "$here/../go-toolchain.sh"
# Go is needed only when something is not cached yet (see pb_build_go).
PB_GO_MODS=("$cp_dir/kubernetes/go.mod" "$here/cri-tools/go.mod")

k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean"
kdir="$tools/kubernetes-$k8s_version"
for cmd in kubelet kube-scheduler kube-proxy; do
    pb_build_go "$cp_dir/kubernetes" "k8s.io/kubernetes/cmd/$cmd" "$kdir/$cmd" "$k8s_ldflags"
done
pb_build_go "$here/cri-tools" sigs.k8s.io/cri-tools/cmd/crictl "$tools/cri-tools-$cri_version/crictl" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$cri_version"


mkdir -p "$tools/current"
for cmd in kubelet kube-scheduler kube-proxy; do ln -sf "$kdir/$cmd" "$tools/current/$cmd"; done
ln -sf "$tools/cri-tools-$cri_version/crictl" "$tools/current/crictl"
echo "$tools/current"
