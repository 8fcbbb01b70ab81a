#!/usr/bin/env bash
# `make image`: builds the repository's Dockerfile as it ships, with no registry and no
# Docker daemon, and imports it into the real test node's containerd when that runs.
#   0. pause  the pod sandbox image (hack/node/pause), $PAGERBRIDGE_TOOLS_DIR/images/pause.tar
#             (`image.sh --pause-only` stops here; node-up runs that when it is missing)
#   1. base   debootstrap (Debian bookworm minbase + python3, pip, venv) -> buildah image
#             localhost/pagerbridge-python:3.11-bookworm; the rootfs tarball is cached in
#             $PAGERBRIDGE_TOOLS_DIR/images, so only the first run takes minutes.
#   2. image  buildah bud of ./Dockerfile, only --build-arg PYTHON_IMAGE=<that base>;
#             unchanged sources: every layer cached (seconds); changed: rebuilt on the
#             cached base (pip wheel + install, well under a minute).
#   3. export docker-archive $IMAGES/pagerbridge.tar (node-up imports it too) and, when
#             the node's containerd runs, `ctr -n k8s.io images import` it.
# Needs root and the packages of hack/node/install-runtime.sh (buildah, runc, debootstrap).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
tools="${PAGERBRIDGE_TOOLS_DIR:-$HOME/.cache/pagerbridge/tools}"
images="$tools/images"
node_dir="${PAGERBRIDGE_NODE_DIR:-$repo/.node}"
suite=bookworm
mirror="${PAGERBRIDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base="localhost/pagerbridge-python:3.11-$suite"
image="${PAGERBRIDGE_IMAGE:-localhost/pagerbridge:dev}"
log() { echo "[image] $*" >&2; }
buildah_() { buildah --storage-driver "${STORAGE_DRIVER:-overlay}" "$@"; }

mkdir -p "$images"
exec 9>"$images/.lock"
flock 9

# The pod sandbox ("pause") image: hack/node/pause, a static binary, alone in the image.
pause_tar="$images/pause.tar"
if [ ! -s "$pause_tar" ]; then
    pause_bin="$tools/pause-1/pause"
    if [ ! -x "$pause_bin" ]; then
        # shellcheck source=../go-toolchain.sh
        source "$repo/hack/go-toolchain.sh"
        pb_ensure_go "$repo/hack/node/pause/go.mod"
        mkdir -p "$(dirname "$pause_bin")"
        (cd "$repo/hack/node/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$pause_bin.tmp" .)
        mv "$pause_bin.tmp" "$pause_bin"
    fi
    log "pause image localhost/pagerbridge-pause:1"
    ctr_id="$(buildah_ from scratch)"
    buildah_ copy "$ctr_id" "$pause_bin" /pause >/dev/null
    buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$ctr_id"
    buildah_ commit --quiet --rm "$ctr_id" localhost/pagerbridge-pause:1 >/dev/null
    buildah_ push --quiet localhost/pagerbridge-pause:1 "docker-archive:$pause_tar.tmp:localhost/pagerbridge-pause:1" >/dev/null
    mv "$pause_tar.tmp" "$pause_tar"
fi
if [ "${1:-}" = "--pause-only" ]; then exit 0; fi

rootfs_tar="$images/python-$suite-rootfs.tar"
if ! buildah_ inspect --type image "$base" >/dev/null 2>&1; then
    if [ ! -s "$rootfs_tar" ]; then
        log "debootstrap $suite (minbase + python3) -> $rootfs_tar (first time only)"
        work="$(mktemp -d)"
        trap 'rm -rf "$work"' EXIT
        debootstrap --variant=minbase \
            --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
            "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
            || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
        # Smaller and reproducible-ish: no apt lists, caches or logs in the image.
        rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin \
            "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/log/*
        tar -C "$work/rootfs" --numeric-owner -cf "$rootfs_tar.tmp" .
        mv "$rootfs_tar.tmp" "$rootfs_tar"
        rm -rf "$work"
        trap - EXIT
    fi
    log "base image $base from $rootfs_tar"
    ctr_id="$(buildah_ from scratch)"
    buildah_ add "$ctr_id" "$rootfs_tar" / >/dev/null
    # The build host's extra certificate authorities (e.g. a TLS-intercepting proxy's in
    # front of PyPI), so `pip wheel` in the Dockerfile trusts what the host trusts.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        buildah_ copy "$ctr_id" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/ >/dev/null
        buildah_ run --runtime /usr/bin/runc --network none "$ctr_id" update-ca-certificates >/dev/null 2>&1
    fi
    # Like the official python images: pip may install into the image's Python (PEP 668's
    # marker is for hosts, where the distribution's packages must not be overwritten).
    buildah_ run --runtime /usr/bin/runc --network none "$ctr_id" \
        sh -c 'rm -f /usr/lib/python3*/EXTERNALLY-MANAGED' >/dev/null
    buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "$ctr_id"
    buildah_ commit --quiet --rm "$ctr_id" "$base" >/dev/null
fi

# buildah 1.28's layer cache does not key `RUN --mount=type=bind,from=build` on the
# mounted stage's content: with --layers a code change gives back an old runtime stage.
# So no layer cache: the build context's own hash decides. Unchanged sources -> the image
# built from them is reused as it is (seconds); changed -> built anew on the cached
# debootstrapped base.
source_hash="$(cd "$repo" && {
    sha256sum Dockerfile .dockerignore
    buildah_ inspect --type image --format '{{.FromImageID}}' "$base"
    find pyproject.toml README.md requirements operator -type f ! -name '*.pyc' ! -path '*/__pycache__/*' \
        ! -name '*.db' ! -name '*.db-wal' ! -name '*.db-shm' -print0 | sort -z | xargs -0 sha256sum
} | sha256sum | cut -c1-16)"
read -r built_hash built_id <"$images/pagerbridge.source" 2>/dev/null || true
if [ "${built_hash:-}" = "$source_hash" ] && buildah_ inspect --type image "${built_id:-none}" >/dev/null 2>&1; then
    log "sources unchanged since image ${built_id:7:12}: reused"
else
    log "buildah bud $repo/Dockerfile (--build-arg PYTHON_IMAGE=$base) -> $image"
    build_log="$images/build.log"
    if ! buildah_ bud --runtime /usr/bin/runc --pull-never --network host --no-cache \
        --iidfile "$images/pagerbridge.iid" --build-arg "PYTHON_IMAGE=$base" \
        -f "$repo/Dockerfile" "$repo" >"$build_log" 2>&1; then
        tail -40 "$build_log" >&2
        exit 1
    fi
    built_id="$(cat "$images/pagerbridge.iid")"
    echo "$source_hash $built_id" >"$images/pagerbridge.source"
    # buildah 1.28 leaves the build stage's working container behind.
    buildah_ rm --all >/dev/null
fi
buildah_ tag "$built_id" "$image"

archive="$images/pagerbridge.tar"
id="$built_id"
if [ ! -s "$archive" ] || [ "$(cat "$archive.id" 2>/dev/null)" != "$id" ]; then
    rm -f "$archive"
    buildah_ push --quiet "$image" "docker-archive:$archive:$image" >/dev/null
    echo "$id" >"$archive.id"
fi
socket="$node_dir/containerd/containerd.sock"
if [ -S "$socket" ]; then
    log "importing into the node's containerd ($socket)"
    ctr --address "$socket" -n k8s.io images import --no-unpack=false "$archive" >/dev/null
fi
log "$image: $(buildah_ images --format '{{.Size}}' "$image" | head -n1) (archive $(du -h "$archive" | cut -f1))"
echo "$image"
