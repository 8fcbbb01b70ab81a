"""``Node``: one real Kubernetes node beside a local control plane (Linux, root).

Runs, as local processes started and recorded here:

- containerd (Debian package, its own config, socket, root and state under the node's
  directory; runc as the runtime, CNI ``bridge`` networking on :data:`BRIDGE`);
- kubelet (cgroupfs driver, loopback only, anonymous read access on loopback);
- kube-scheduler, kube-proxy (iptables mode: the ``kubernetes`` Service's ClusterIP
  reaches the API server the standard in-cluster way) and a second kube-controller-manager
  with the controllers a cluster runs for workloads (the control plane's own one keeps
  garbage collection and namespace deletion);
- a TCP forwarder from :data:`GATEWAY` (the bridge's address, which the API server
  advertises as the ``kubernetes`` Service endpoint) to the API server on loopback.

Pods get addresses in :data:`SUBNET` with a route to the Service range only: no route
out of the machine. ``stop`` / :func:`teardown` leave the machine as it was, from whatever
state the node is in (see :func:`teardown`): processes found by record and by the node's
own directory and ended, pod sandboxes removed, shims killed with their containers, mounts
and network namespaces (in the node's directory) unmounted, veths, bridge and ``kubepods``
cgroups removed, iptables and ip6tables given back what they held before the start, and
the sysctls the kubelet and CNI change restored. Everything is recorded in
``<state_dir>/node.json`` before it is changed, so a crashed run is torn down by
``python -m pagerbridge_devkit.localcluster node-down``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from pagerbridge_devkit.localcluster.binaries import REPO_ROOT, tools_dir
from pagerbridge_devkit.localcluster.processes import spawn
from pagerbridge_devkit.ports import free_port as _free_port

log = logging.getLogger(__name__)

BRIDGE = "pbr0"
SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/24"
PAUSE_IMAGE = "localhost/pagerbridge-pause:1"
STATE_FILE = "node.json"
# hostPath PersistentVolumes made at start (a bound claim's volume is not reused).
VOLUMES = 40
BUILD_SCRIPT = REPO_ROOT / "hack" / "node" / "build.sh"
IMAGE_SCRIPT = REPO_ROOT / "hack" / "node" / "image.sh"
RUNTIME_SCRIPT = REPO_ROOT / "hack" / "node" / "install-runtime.sh"
# Changed by the kubelet (kernel.*, vm.*), the CNI bridge (ip_forward) and kube-proxy;
# recorded before the start and written back by the teardown.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.netfilter.nf_conntrack_max",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
)
NODE_CONTROLLERS = ",".join(
    f"{name}-controller"
    for name in (
        "deployment", "replicaset", "serviceaccount", "serviceaccount-token", "endpoints",
        "endpointslice", "endpointslice-mirroring", "persistentvolume-binder",
        "root-ca-certificate-publisher",
    )
)  # fmt: skip
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy", "crictl")
SYSTEM_COMMANDS = ("containerd", "ctr", "runc", "ip", "iptables-save", "iptables", "nsenter")


class NodeError(RuntimeError):
    """The node cannot run here, or a component did not come up (the message says which)."""


def unavailable_reason() -> str | None:
    """Why a real node cannot run on this machine, or None when it can."""
    if sys.platform != "linux":
        return f"a real node needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "a real node needs root (containerd, runc, network namespaces, cgroups)"
    missing = [cmd for cmd in SYSTEM_COMMANDS if shutil.which(cmd) is None]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        return (
            f"the node's runtime packages are missing ({', '.join(missing) or 'CNI plugins'}): "
            f"run {RUNTIME_SCRIPT.relative_to(REPO_ROOT)} as root"
        )
    return None


def node_binary(name: str) -> Path:
    return tools_dir() / name


def ensure_binaries() -> None:
    """Builds kubelet, kube-scheduler, kube-proxy and crictl once (hack/node/build.sh)."""
    if all(os.access(node_binary(n), os.X_OK) for n in NODE_BINARIES):
        return
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, check=False)
    if result.returncode != 0:
        raise NodeError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")


def images_dir() -> Path:
    return tools_dir().parent / "images"


# --- host state: record and restore -------------------------------------------------------


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        with contextlib.suppress(OSError):
            values[name] = path.read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> list[str]:
    """Writes back recorded values; returns the names that could not be written."""
    failed = []
    for name, value in values.items():
        path = Path("/proc/sys") / name.replace(".", "/")
        try:
            if path.exists() and path.read_text().strip() != value:
                path.write_text(value + "\n")
        except OSError:
            failed.append(name)
    return failed


IPTABLES_FAMILIES = {"ip": "iptables", "ip6": "ip6tables"}
# The tables kube-proxy writes (its chains, KUBE-FIREWALL and the canaries), both families.
IPTABLES_TABLES = ("filter", "nat", "mangle")
# Executables of the node's runtime: none of them may run after the teardown.
RUNTIME_NAMES = ("containerd", "kubelet", "kube-proxy", "kube-scheduler", "runc", "pause")
# Mounts a node makes (pod rootfs, shm, secrets, network namespaces) are of these kinds or
# lie in a directory of one of these names.
MOUNT_TYPES = ("overlay", "nsfs", "shm")
MOUNT_MARKS = ("/containerd", "/kubelet", "/netns", "/cni", "kubernetes.io~", "/pods/")


def iptables_save(family: str, table: str) -> str:
    """``iptables-save`` (or ``ip6tables-save``) of one table, as restorable text."""
    result = subprocess.run(
        [f"{IPTABLES_FAMILIES[family]}-save", "-t", table],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout


def iptables_rules() -> dict[str, list[str]]:
    """Chains and rules of kube-proxy's tables in both families (no counters), keyed
    ``"ip/filter"``, ``"ip6/nat"``..."""
    tables: dict[str, list[str]] = {}
    for family in IPTABLES_FAMILIES:
        for table in IPTABLES_TABLES:
            tables[f"{family}/{table}"] = _rule_lines(iptables_save(family, table))
    return tables


def _rule_lines(saved: str) -> list[str]:
    return [
        line.split(" [", 1)[0] if line.startswith(":") else line
        for line in saved.splitlines()
        if line and not line.startswith(("#", "*", "COMMIT"))
    ]


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, source) of every mount of this mount namespace."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        rest = fields[fields.index("-") + 1 :]
        found.append((fields[4].replace("\\040", " "), rest[0], rest[1]))
    return found


def mounts_under(paths: Iterable[Path]) -> list[str]:
    """Mount points at or below any of ``paths``, deepest first."""
    prefixes = [str(p) for p in paths]
    found = [
        point
        for point, _, _ in _mountinfo()
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes)
    ]
    return sorted(set(found), key=len, reverse=True)


def node_mounts() -> list[str]:
    """Mounts of the kinds a node makes (see :data:`MOUNT_TYPES`, :data:`MOUNT_MARKS`)."""
    return sorted(
        f"{point} ({fstype})"
        for point, fstype, source in _mountinfo()
        if fstype in MOUNT_TYPES or source == "shm" or any(mark in point for mark in MOUNT_MARKS)
    )


def netns_names() -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(p.name for p in Path("/var/run/netns").iterdir())
    return []


def cgroup_dirs() -> list[str]:
    """Top-level cgroup directories of every v1 controller (``cpu/kubepods``...)."""
    found: list[str] = []
    for controller in sorted(CGROUP_ROOT.iterdir()) if CGROUP_ROOT.is_dir() else []:
        if controller.is_dir() and not controller.is_symlink():
            found.extend(f"{controller.name}/{d.name}" for d in controller.iterdir() if d.is_dir())
    return sorted(found)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def links() -> list[str]:
    """Network interfaces of a node's kind: its bridge and pods' host-side veths."""
    with contextlib.suppress(OSError):
        return sorted(
            p.name
            for p in Path("/sys/class/net").iterdir()
            if p.name == BRIDGE or p.name.startswith("veth")
        )
    return []


def runtime_processes() -> list[str]:
    """Processes of a node's kind on this machine: its runtime's executables, the
    containerd shims and anything in a ``kubepods`` cgroup (pods' containers)."""
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if start_ticks(proc.info["pid"]) is None:  # gone, or a zombie: holds nothing
            continue
        with contextlib.suppress(psutil.Error, OSError):
            argv0 = Path((proc.info["cmdline"] or [""])[0]).name
            name = proc.info["name"] or ""
            if (
                name in RUNTIME_NAMES
                or argv0 in RUNTIME_NAMES
                or argv0.startswith("containerd-shim")
                or _in_kubepods(proc.info["pid"])
            ):
                found.append(f"{argv0 or name} ({proc.info['pid']})")
    return sorted(found)


def _in_kubepods(pid: int) -> bool:
    try:
        return "/kubepods" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


@dataclass(frozen=True)
class HostSnapshot:
    """What the teardown must give back: compared before and after in the tests."""

    sysctls: dict[str, str]
    iptables: dict[str, list[str]]
    netns: list[str]
    cgroups: list[str]
    bridge: bool
    processes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @classmethod
    def take(cls) -> HostSnapshot:
        return cls(
            sysctls=read_sysctls(),
            iptables=iptables_rules(),
            netns=netns_names(),
            cgroups=cgroup_dirs(),
            bridge=link_exists(BRIDGE),
            processes=runtime_processes(),
            mounts=node_mounts(),
            links=links(),
        )

    def differences(self, other: HostSnapshot) -> dict[str, Any]:
        """What ``other`` has that this snapshot has not, and the reverse, per aspect."""
        diff: dict[str, Any] = {}
        for name, mine in self.to_json().items():
            theirs = other.to_json()[name]
            if mine == theirs:
                continue
            if isinstance(mine, dict):
                keys = sorted(set(mine) | set(theirs))
                diff[name] = {
                    k: _list_diff(mine.get(k), theirs.get(k))
                    for k in keys
                    if mine.get(k) != theirs.get(k)
                }
            else:
                diff[name] = _list_diff(mine, theirs)
        return diff

    def to_json(self) -> dict[str, Any]:
        return {
            "sysctls": self.sysctls,
            "iptables": self.iptables,
            "netns": self.netns,
            "cgroups": self.cgroups,
            "bridge": self.bridge,
            "processes": self.processes,
            "mounts": self.mounts,
            "links": self.links,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSnapshot:
        return cls(
            data["sysctls"],
            {k if "/" in k else f"ip/{k}": v for k, v in data["iptables"].items()},
            data["netns"],
            data["cgroups"],
            data["bridge"],
            data.get("processes", []),
            data.get("mounts", []),
            data.get("links", []),
        )


def _list_diff(before: Any, after: Any) -> Any:
    if isinstance(before, list) and isinstance(after, list):
        return {
            "added": [x for x in after if x not in before],
            "removed": [x for x in before if x not in after],
        }
    return {"before": before, "after": after}


# --- the node --------------------------------------------------------------------------


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Node:
    """One real node for the control plane whose state directory is ``plane_dir``.

    ``plane_dir`` holds that control plane's ``kubeconfig`` and ``pki/`` (``ControlPlane``'s
    layout). ``detach=True`` lets the processes outlive this Python process (``make
    node-up``); otherwise they get SIGTERM when the starting thread ends.
    """

    def __init__(
        self,
        state_dir: Path,
        plane_dir: Path,
        *,
        detach: bool = False,
        start_timeout: float = 180.0,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.plane_dir = plane_dir.resolve()
        self.detach = detach
        self.start_timeout = start_timeout
        self.name = socket.gethostname().lower()
        self._state: dict[str, Any] = {}

    # --- paths ----------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.plane_dir / "kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.state_dir / "containerd" / "containerd.sock"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> Node:
        reason = unavailable_reason()
        if reason:
            raise NodeError(reason)
        if link_exists(BRIDGE):
            raise NodeError(
                f"network interface {BRIDGE} exists: another node runs on this machine "
                "(one at a time; `make node-down` stops the one of this checkout)"
            )
        if not self.kubeconfig.is_file():
            raise NodeError(f"no control plane at {self.plane_dir} (run `make cluster-up` first)")
        ensure_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._state = {
            "name": self.name,
            "planeDir": str(self.plane_dir),
            "host": HostSnapshot.take().to_json(),
            # Restored table by table if removing the node's rules does not suffice.
            "iptablesSaved": {
                f"{family}/{table}": iptables_save(family, table)
                for family in IPTABLES_FAMILIES
                for table in IPTABLES_TABLES
            },
            "runContainerdExisted": Path("/run/containerd").exists(),
            "varLibCniExisted": Path("/var/lib/cni").exists(),
            "processes": [],
        }
        self._save()
        try:
            self._start_all()
        except BaseException:
            teardown(self.state_dir)
            raise
        return self

    def stop(self) -> list[str]:
        return teardown(self.state_dir)

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_all(self) -> None:
        apiserver_port = _port_of(_server(self.kubeconfig))
        self._run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        self._run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE])
        self._run(["ip", "link", "set", BRIDGE, "up"])
        self._write_configs()
        self._spawn(
            "containerd", ["containerd", "--config", str(self.state_dir / "containerd.toml")]
        )
        self._poll(lambda: self._ctr("version").returncode == 0, "containerd")
        self.import_images()
        self._spawn(
            "apiserver-forwarder",
            [
                sys.executable, "-m", "pagerbridge_devkit.localcluster.forward",
                f"{GATEWAY}:{apiserver_port}", f"127.0.0.1:{apiserver_port}",
            ],
        )  # fmt: skip
        self._start_kubelet()
        self._poll(self._node_ready, f"node {self.name} Ready")
        # Without a node-lifecycle controller nothing lifts the registration taint.
        self.kubectl(
            "taint", "nodes", self.name, "node.kubernetes.io/not-ready:NoSchedule-", check=False
        )
        self._start_control_loops()
        self._poll(self._kubernetes_service_routed, "kube-proxy rules for the kubernetes Service")
        self._create_volumes()

    def _create_volumes(self) -> None:
        """Static hostPath PersistentVolumes (no class) for the persistentvolume-binder to
        bind claims to, e.g. the relays' outboxes; their directories live in the node's
        own directory, owned by the image's user, and go with it at teardown."""
        docs = []
        for index in range(VOLUMES):
            path = self.state_dir / "volumes" / f"pv-{index}"
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, 65532, 65532)
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"{self.name}-pv-{index}"},
                    "spec": {
                        "capacity": {"storage": "2Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": str(path), "type": "Directory"},
                    },
                }
            )
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def _write_configs(self) -> None:
        d = self.state_dir
        cni = d / "cni" / "net.d"
        cni.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "pagerbridge",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "isDefaultGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(d / "cni" / "ipam"),
                        "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                        # Only the Service range, through the host: no route out.
                        "routes": [{"dst": SERVICE_CIDR, "gw": GATEWAY}],
                    },
                }
            ],
        }
        (cni / "10-pagerbridge.conflist").write_text(json.dumps(conflist, indent=2))
        containerd = f"""version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{d}/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  # Pods' network namespaces in the node's own directory, not the host's /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        Root = "{d}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
    max_conf_num = 1
"""
        (d / "containerd.toml").write_text(containerd)
        self._state["kubeletPort"] = _free_port()
        self._state["kubeletHealthzPort"] = _free_port()
        kubelet = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": self._state["kubeletPort"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self._state["kubeletHealthzPort"],
            "authentication": {
                "anonymous": {"enabled": True},
                "webhook": {"enabled": False},
            },
            "authorization": {"mode": "AlwaysAllow"},  # loopback only, see address
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "failCgroupV1": False,
            "makeIPTablesUtilChains": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "podLogsDir": str(d / "pod-logs"),
            "syncFrequency": "5s",  # ConfigMap/Secret volume updates within seconds
            "fileCheckFrequency": "1h",
            "registerNode": True,
            "resolvConf": "",
            "serializeImagePulls": False,
            "localStorageCapacityIsolation": False,
        }
        (d / "kubelet.yaml").write_text(yaml.safe_dump(kubelet))
        self._save()

    def _start_kubelet(self) -> None:
        d = self.state_dir
        self._spawn(
            "kubelet",
            [
                str(node_binary("kubelet")),
                f"--config={d / 'kubelet.yaml'}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={d / 'kubelet'}",
                f"--cert-dir={d / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                "--v=1",
            ],
        )

    def _start_control_loops(self) -> None:
        d, kc = self.state_dir, self.kubeconfig
        pki = self.plane_dir / "pki"
        self._spawn(
            "kube-scheduler",
            [
                str(node_binary("kube-scheduler")),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-controller-manager",
            [
                str(tools_dir() / "kube-controller-manager"),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                f"--controllers={NODE_CONTROLLERS}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
                f"--cert-dir={d / 'controller-manager-certs'}",
                "--concurrent-deployment-syncs=2",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-proxy",
            [
                str(node_binary("kube-proxy")),
                f"--kubeconfig={kc}",
                f"--hostname-override={self.name}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={SUBNET}",
                "--iptables-localhost-nodeports=false",  # no route_localnet sysctl
                "--conntrack-max-per-core=0",  # leave nf_conntrack_max alone
                f"--healthz-bind-address=127.0.0.1:{_free_port()}",
                f"--metrics-bind-address=127.0.0.1:{_free_port()}",
                "--v=1",
            ],
        )

    def import_images(self) -> None:
        """Imports the pause image (built when missing) and, when built, the project's."""
        pause = images_dir() / "pause.tar"
        if not pause.is_file():
            built = subprocess.run(
                ["bash", str(IMAGE_SCRIPT), "--pause-only"], stdout=subprocess.PIPE, check=False
            )
            if built.returncode != 0:
                raise NodeError(f"{IMAGE_SCRIPT} --pause-only failed")
        for archive in (pause, images_dir() / "pagerbridge.tar"):
            if archive.is_file():
                result = self._ctr("-n", "k8s.io", "images", "import", str(archive))
                if result.returncode != 0:
                    raise NodeError(f"ctr images import {archive}: {result.stderr}")

    def image_size(self, reference: str) -> str:
        """The image's size as containerd reports it (compressed layers), e.g. ``251.3 MiB``."""
        listing = self._ctr("-n", "k8s.io", "images", "ls")
        for line in listing.stdout.splitlines():
            fields = line.split()
            if fields and fields[0] == reference:
                return " ".join(fields[3:5])
        return "unknown"

    # --- probes ---------------------------------------------------------------------

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tools_dir() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise NodeError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def _node_ready(self) -> bool:
        result = self.kubectl(
            "get", "node", self.name, "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )  # fmt: skip
        return result.stdout.strip() == "True"

    def _kubernetes_service_routed(self) -> bool:
        result = subprocess.run(
            ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False
        )
        return "default/kubernetes:https" in result.stdout and "KUBE-SEP" in result.stdout

    def _poll(self, probe: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._check_alive()
            if probe():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p}:\n{_tail(p)}" for p in sorted(self.logs.glob("*.log")))
                raise NodeError(f"{what}: not ready after {self.start_timeout:g}s\n{logs}")
            time.sleep(0.5)

    def _check_alive(self) -> None:
        for entry in self._state["processes"]:
            if _alive(entry) is not None:
                continue
            path = self.logs / f"{entry['name']}.log"
            raise NodeError(f"{entry['name']} exited; last lines of {path}:\n{_tail(path)}")

    # --- processes and state ----------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as out:
            process = spawn(
                argv,
                stdout=out,
                cwd=self.state_dir,
                env={
                    **os.environ,
                    "PATH": f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}",
                },
                die_with_parent=not self.detach,
            )
        self._state["processes"].append(
            {"name": name, "pid": process.pid, "startTicks": start_ticks(process.pid)}
        )
        self._save()

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NodeError(f"{' '.join(argv)}: {result.stderr.strip()}")

    def _save(self) -> None:
        (self.state_dir / STATE_FILE).write_text(json.dumps(self._state, indent=2) + "\n")


def _server(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    server: str = config["clusters"][0]["cluster"]["server"]
    return server


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


# --- teardown ----------------------------------------------------------------------------


def recorded(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat``,
    field 22), or None when there is no such (live) process.

    With the pid it identifies a process. A wall-clock start time (psutil's
    ``create_time()``: boot time + these ticks) does not: the boot time is recomputed from
    the current clock on every read and moves by a whole second when the clock is stepped
    or slewed across a second boundary, after which a recorded process looks gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _alive(entry: dict[str, Any]) -> psutil.Process | None:
    ticks = start_ticks(entry["pid"])
    if ticks is None:
        return None
    if "startTicks" in entry:
        if ticks != entry["startTicks"]:
            return None
    else:  # recorded by an older version: a wall-clock start time
        with contextlib.suppress(psutil.Error):
            if abs(psutil.Process(entry["pid"]).create_time() - entry["createTime"]) > 2:
                return None
    with contextlib.suppress(psutil.Error):
        return psutil.Process(entry["pid"])
    return None


def running(state_dir: Path) -> list[tuple[str, int]]:
    state = recorded(state_dir) or {"processes": []}
    return [(e["name"], e["pid"]) for e in state["processes"] if _alive(e) is not None]


def _within(arg: str, prefix: str) -> bool:
    value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
    return value == prefix or value.startswith(prefix + "/")


def _argv0(proc: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error, IndexError):
        return Path(proc.cmdline()[0]).name
    return ""


def _is_shim(proc: psutil.Process) -> bool:
    return _argv0(proc).startswith("containerd-shim")


def node_processes(state_dir: Path, state: dict[str, Any]) -> list[psutil.Process]:
    """The live processes this node started: the recorded ones (by pid and start ticks),
    and every process whose working directory or an argument lies in the node's own
    directory (everything the node spawns runs there; containerd's shims are started in
    their bundle directories there and name the node's socket in ``-address``). That also
    finds shims started while containerd was stopping and processes whose record is lost.
    Never the calling process or its ancestors."""
    prefix = str(state_dir)
    me = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        me.update(p.pid for p in psutil.Process().parents())
    found: dict[int, psutil.Process] = {}
    for entry in state.get("processes", []):
        proc = _alive(entry)
        if proc is not None:
            found[proc.pid] = proc
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info
        if info["pid"] in me or info["pid"] in found or start_ticks(info["pid"]) is None:
            continue
        if any(_within(arg, prefix) for arg in [info.get("cwd") or "", *(info["cmdline"] or [])]):
            found[info["pid"]] = proc
    return sorted(found.values(), key=lambda p: p.pid)


def _end(procs: list[psutil.Process], timeout: float = 10.0) -> list[str]:
    """SIGTERM (the whole group of a group leader), SIGKILL after ``timeout``; waits for
    each to be gone and reaps our own children. Returns those still running."""
    ticks = {p.pid: start_ticks(p.pid) for p in procs}

    def signal_all(sig: signal.Signals) -> None:
        for pid, tick in ticks.items():
            if tick is None or start_ticks(pid) != tick:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)

    def left() -> list[int]:
        for pid in ticks:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        return [pid for pid, tick in ticks.items() if tick is not None and start_ticks(pid) == tick]

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not left():
            return []
        signal_all(sig)
        deadline = time.monotonic() + wait
        while left() and time.monotonic() < deadline:
            time.sleep(0.05)
    return [f"process {pid} still runs" for pid in left()]


def _kill_trees(roots: list[psutil.Process]) -> list[str]:
    """SIGKILL ``roots`` with all their descendants (a shim's are its pods' containers,
    which would otherwise be re-parented to init and keep running) and wait for them."""
    procs = list(roots)
    for root in roots:
        with contextlib.suppress(psutil.Error):
            procs.extend(root.children(recursive=True))
    ticks = {p.pid: start_ticks(p.pid) for p in procs}
    for pid, tick in ticks.items():
        if tick is not None and start_ticks(pid) == tick:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    alive = list(ticks)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if ticks[pid] is not None and start_ticks(pid) == ticks[pid]]
        time.sleep(0.05)
    return [f"process {pid} (pod container or shim) still runs" for pid in alive]


def teardown(state_dir: Path) -> list[str]:
    """Undoes everything a node recorded in ``state_dir``; returns what could not be undone.

    Works from whatever state the node is in (a killed kubelet or containerd, pods still
    starting or terminating, a crashed run): processes are found by record *and* by the
    node's own directory, and each step waits for what it ends to be gone."""
    state_dir = state_dir.resolve()
    state = recorded(state_dir)
    if state is None:
        return []
    problems: list[str] = []
    before = HostSnapshot.from_json(state["host"])
    socket_path = state_dir / "containerd" / "containerd.sock"

    def containerd(procs: list[psutil.Process]) -> list[psutil.Process]:
        return [p for p in procs if _argv0(p) == "containerd"]

    # 1. Nothing may start pods or write rules any more: every process of the node but
    #    containerd and its shims (kubelet, control loops, kube-proxy, the forwarder).
    procs = node_processes(state_dir, state)
    runtime = {p.pid for p in containerd(procs)} | {p.pid for p in procs if _is_shim(p)}
    problems += _end([p for p in procs if p.pid not in runtime])
    # 2. kube-proxy's own cleanup (it leaves KUBE-FIREWALL; step 9 takes the rest).
    proxy = node_binary("kube-proxy")
    if proxy.exists():
        subprocess.run(
            [str(proxy), "--cleanup", "--proxy-mode=iptables"], capture_output=True, check=False
        )
    # 3. Pod sandboxes through the CRI while containerd runs: stops their containers,
    #    tears down their networks (CNI DEL) and removes their mounts.
    crictl = node_binary("crictl")
    if socket_path.exists() and crictl.exists() and containerd(node_processes(state_dir, state)):
        endpoint = f"unix://{socket_path}"
        base = [str(crictl), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint]
        base += ["--timeout", "30s"]
        pods = subprocess.run([*base, "pods", "-q"], capture_output=True, text=True, check=False)
        for pod in pods.stdout.split():
            subprocess.run([*base, "stopp", pod], capture_output=True, check=False)
            subprocess.run([*base, "rmp", "-f", pod], capture_output=True, check=False)
    problems += _end(containerd(node_processes(state_dir, state)))
    # 4. Shims (re-parented to init, their own process groups) with their containers,
    #    until none is left: one may have been started while containerd was stopping.
    for _ in range(5):
        shims = [p for p in node_processes(state_dir, state) if _is_shim(p)]
        if not shims:
            break
        problems += _kill_trees(shims)
    # 5. Pod containers whose shim was already gone (they run in the node's cgroups),
    #    then anything else of the node's.
    new_cgroups = sorted(set(cgroup_dirs()) - set(before.cgroups))
    problems += _kill_trees([p for p in _cgroup_processes(new_cgroups)])
    problems += _end(node_processes(state_dir, state))
    # 6. Mounts: pod rootfs, shm, volumes and network namespaces all live in the node's
    #    directory; /run/containerd and /var/run/netns for what an older layout put there.
    for point in mounts_under([state_dir, Path("/run/containerd"), Path("/var/run/netns")]):
        if point.startswith(str(state_dir)) or "/k8s.io/" in point or _new_netns(point, state):
            result = subprocess.run(
                ["umount", "-l", point], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                problems.append(f"umount {point}: {result.stderr.strip()}")
    for name in set(netns_names()) - set(before.netns):
        path = Path("/var/run/netns") / name
        subprocess.run(["umount", str(path)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            path.unlink()
    # 7. Links: pods' veths left by a namespace that outlived its pod, then the bridge.
    for name in sorted(set(links()) - set(before.links)):
        if name.startswith("veth") or (name == BRIDGE and not before.bridge):
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
    if link_exists(BRIDGE) and not before.bridge:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
    # 8. cgroups.
    for rel in new_cgroups:
        _remove_cgroup(CGROUP_ROOT / rel, problems)
    # 9. iptables, both families: what kube-proxy --cleanup left (KUBE-FIREWALL...).
    _restore_iptables(before.iptables, state.get("iptablesSaved", {}), problems)
    # 10. sysctls.
    for name in write_sysctls(before.sysctls):
        problems.append(f"sysctl {name} could not be restored")
    # 11. Directories the runtime created outside the node's own.
    if not state.get("runContainerdExisted"):
        shutil.rmtree("/run/containerd", ignore_errors=True)
    if not state.get("varLibCniExisted"):
        shutil.rmtree("/var/lib/cni", ignore_errors=True)
    if not mounts_under([state_dir]):
        shutil.rmtree(state_dir, ignore_errors=True)
    else:
        problems.append(f"mounts left under {state_dir}")
    for problem in problems:
        log.warning("node teardown: %s", problem)
    return problems


def _cgroup_processes(rels: list[str]) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for rel in rels:
        for procs_file in (CGROUP_ROOT / rel).rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                for pid in procs_file.read_text().split():
                    with contextlib.suppress(psutil.Error):
                        found[int(pid)] = psutil.Process(int(pid))
    return list(found.values())


def _new_netns(point: str, state: dict[str, Any]) -> bool:
    if not point.startswith(("/run/netns/", "/var/run/netns/")):
        return False
    return Path(point).name not in state["host"]["netns"]


def _remove_cgroup(path: Path, problems: list[str]) -> None:
    if not path.is_dir():
        return
    for child in sorted(
        (p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        _rmdir_cgroup(child, problems)
    _rmdir_cgroup(path, problems)


def _rmdir_cgroup(path: Path, problems: list[str]) -> None:
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)  # a killed process still leaving it
    problems.append(f"cgroup {path} could not be removed")


def _restore_iptables(
    before: dict[str, list[str]], saved: dict[str, str], problems: list[str]
) -> None:
    """Removes the rules and chains that were not there before; a table that still
    differs then gets its saved text back (``iptables-restore`` of that table only)."""
    for key, lines in iptables_rules().items():
        old_lines = before.get(key)
        if old_lines is None or lines == old_lines:
            continue
        family, table = key.split("/")
        cmd = IPTABLES_FAMILIES[family]
        old = set(old_lines)
        for rule in reversed([ln for ln in lines if ln.startswith("-A") and ln not in old]):
            argv = shlex.split(rule.replace("-A", "-D", 1))
            subprocess.run([cmd, "-t", table, *argv], capture_output=True, check=False)
        new_chains = [ln[1:].split()[0] for ln in lines if ln.startswith(":") and ln not in old]
        for flag in ("-F", "-X"):
            for chain in new_chains:
                subprocess.run([cmd, "-t", table, flag, chain], capture_output=True, check=False)
    for key, lines in iptables_rules().items():
        if key not in before or lines == before[key]:
            continue
        family, table = key.split("/")
        if key in saved:
            subprocess.run(
                [f"{IPTABLES_FAMILIES[family]}-restore"],
                input=saved[key],
                capture_output=True,
                text=True,
                check=False,
            )
        if _rule_lines(iptables_save(family, table)) != before[key]:
            problems.append(f"{IPTABLES_FAMILIES[family]} table {table} differs from before")
