#!/usr/bin/env bash
# Builds (once) and caches promtool, which checks the chart's alerting rules
# (`promtool check rules`), from the Go module proxy via the wrapper module beside this
# script (github.com/prometheus/prometheus/cmd/promtool at the version its go.mod pins).
# The binary lands in $PAGERBRIDGE_TOOLS_DIR (default ~/.cache/pagerbridge/tools), like the
# control-plane binaries (hack/controlplane/build.sh); prints its stable path.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tools="${PAGERBRIDGE_TOOLS_DIR:-$HOME/.cache/pagerbridge/tools}"
version="$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" {print $3}' "$here/go.mod")"
out="$tools/promtool-$version/promtool"
log() { echo "[promtool] $*" >&2; }

mkdir -p "$tools"
# One build at a time; a second caller waits, then finds the binary.
exec 9>"$tools/.promtool.lock"
flock 9

if [ ! -x "$out" ]; then
    # shellcheck source=../go-toolchain.sh
    source "$here/../go-toolchain.sh"
    pb_ensure_go "$here/go.mod"
    log "building promtool $version -> $out (first time only; minutes)"
    mkdir -p "$(dirname "$out")"
    # remove_all_sd: without the ~30 service-discovery plugins (cloud SDKs) that
    # `check rules` never uses; a cold build takes minutes instead of most of an hour.
    (cd "$here" && CGO_ENABLED=0 go build -tags remove_all_sd -trimpath -ldflags "-s -w" \
        -o "$out.tmp" github.com/prometheus/prometheus/cmd/promtool)
    mv "$out.tmp" "$out"
fi
mkdir -p "$tools/current"
ln -sf "$out" "$tools/current/promtool"
echo "$tools/current/promtool"
