#!/usr/bin/env bash
# Sourced by the build scripts: makes `go` on PATH a toolchain new enough for the wrapper
# modules (the highest `go` directive among the go.mod files passed as arguments), or stops
# with one line that says what to install. Never a compiler error deep in a Kubernetes
# package.
#   go >= needed          used as it is
#   1.21 <= go < needed    GOTOOLCHAIN=auto: go fetches golang.org/toolchain itself
#   go < 1.21 (Debian 12)  `go mod download golang.org/toolchain@...` (a module from the
#                          Go module proxy), then that toolchain's bin/go
#   no go                  stop: install golang-go (any version) or Go >= needed
# Usage: source hack/go-toolchain.sh go.mod [go.mod ...]

_pb_version_ge() {  # _pb_version_ge A B: A >= B for dotted versions
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

pb_ensure_go() {
    local needed="0" want mod
    for mod in "$@"; do
        want="$(awk '$1 == "go" {print $2; exit}' "$mod")"
        if _pb_version_ge "$want" "$needed"; then needed="$want"; fi
    done
    case "$needed" in *.*.*) ;; *) needed="$needed.0" ;; esac

    if ! command -v go >/dev/null 2>&1; then
        echo "Building the local Kubernetes binaries needs Go: install it (Debian/Ubuntu: apt-get install golang-go; any version, Go >= $needed is fetched from the Go module proxy)." >&2
        return 1
    fi
    local have
    have="$(go env GOVERSION 2>/dev/null || go version | awk '{print $3}')"
    have="${have#go}"
    have="${have%%[-+ ]*}"
    if _pb_version_ge "$have" "$needed"; then
        return 0
    fi
    if _pb_version_ge "$have" "1.21"; then
        # Go's own toolchain switching (a distribution's go.env may say GOTOOLCHAIN=local).
        export GOTOOLCHAIN="go$needed+auto"
        echo "[go] go $have is older than $needed: GOTOOLCHAIN=$GOTOOLCHAIN" >&2
        return 0
    fi
    local arch
    arch="$(go env GOARCH)"
    local module="golang.org/toolchain@v0.0.1-go$needed.$(go env GOOS)-$arch"
    echo "[go] go $have predates toolchain switching: fetching $module" >&2
    local dir="${PAGERBRIDGE_TOOLS_DIR:-$HOME/.cache/pagerbridge/tools}/go$needed"
    if [ ! -x "$dir/bin/go" ]; then
        local src
        # Outside any module, so the wrapper go.mod files (too new for this go) are not read.
        src="$(cd / && GOFLAGS=-mod=mod GO111MODULE=on go mod download -json "$module" \
            | awk -F'"' '$2 == "Dir" {print $4}')"
        if [ -z "$src" ] || [ ! -f "$src/bin/go" ]; then
            echo "Could not fetch Go $needed ($module) with go $have: install Go >= $needed and re-run." >&2
            return 1
        fi
        # Module zips keep no file modes (Go's own switcher restores them too): copy the
        # read-only module tree and make the toolchain's programs executable.
        rm -rf "$dir.tmp"
        mkdir -p "$(dirname "$dir")"
        cp -r "$src" "$dir.tmp"
        chmod -R u+w "$dir.tmp"
        find "$dir.tmp/bin" "$dir.tmp/pkg/tool" -type f -exec chmod 0755 {} +
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    export PATH="$dir/bin:$PATH"
    export GOROOT="$dir"
    export GOTOOLCHAIN=local
    echo "[go] using $("$dir/bin/go" version)" >&2
}

# pb_build_go MODULE_DIR PACKAGE OUTPUT [LDFLAGS]: builds PACKAGE once into OUTPUT (an
# existing OUTPUT is the cache). Go is checked, on the first build only, against every
# go.mod listed in the caller's PB_GO_MODS array, and logged through the caller's `log`.
_pb_go_ready=""
pb_build_go() {
    local dir="$1" pkg="$2" out="$3" ldflags="${4:-}"
    if [ -x "$out" ]; then return 0; fi
    if [ -z "$_pb_go_ready" ]; then
        pb_ensure_go "${PB_GO_MODS[@]}"
        _pb_go_ready=1
    fi
    log "building $pkg -> $out (first time only; minutes)"
    mkdir -p "$(dirname "$out")"
    (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
}
