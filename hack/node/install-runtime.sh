#!/usr/bin/env bash
# Installs (once) the Debian packages a real test node needs, as root:
#   containerd, runc                 the container runtime (crun refuses this hybrid-cgroup host)
#   containernetworking-plugins      CNI bridge + host-local + loopback (in /usr/lib/cni)
#   iptables                         kube-proxy's Service rules (removed again by node-down)
#   buildah, debootstrap             `make image`: the base image from Debian packages, then
#                                    the Dockerfile, without a Docker daemon or a registry
#   iproute2, mount, util-linux      ip/nsenter/umount used by node-up/node-down
# Does not enable or start any systemd unit: node-up starts containerd itself with its
# own config and state directories.
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables buildah debootstrap iproute2 mount util-linux conntrack)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "[node] runtime packages present" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "[node] missing packages ${missing[*]}: run this script as root (apt-get install)" >&2
    exit 1
fi
echo "[node] apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101: the packages' maintainer scripts must not start containerd as a service.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ -n "$created_policy" ] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
