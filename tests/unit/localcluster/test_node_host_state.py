"""The real node's preconditions and host bookkeeping that need no root to check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pagerbridge_devkit.localcluster import certs, node


def test_not_root_gives_one_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert node.unavailable_reason() == (
        "a real node needs root (containerd, runc, network namespaces, cgroups)"
    )


def test_not_linux_gives_one_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert node.unavailable_reason() == "a real node needs Linux (this is darwin)"


def test_host_snapshot_round_trips_through_the_state_file() -> None:
    snapshot = node.HostSnapshot(
        sysctls={"net.ipv4.ip_forward": "0"},
        iptables={"ip/nat": [":PREROUTING ACCEPT"], "ip6/filter": [":INPUT ACCEPT"]},
        netns=["other"],
        cgroups=["cpu/user.slice"],
        bridge=False,
        processes=["containerd (12)"],
        mounts=["/x/shm (tmpfs)"],
        links=["veth1"],
    )
    assert node.HostSnapshot.from_json(snapshot.to_json()) == snapshot


def test_a_state_file_of_the_previous_layout_reads_as_ipv4_tables() -> None:
    old = {
        "sysctls": {},
        "iptables": {"filter": [":INPUT ACCEPT"]},
        "netns": [],
        "cgroups": [],
        "bridge": False,
    }
    snapshot = node.HostSnapshot.from_json(old)
    assert snapshot.iptables == {"ip/filter": [":INPUT ACCEPT"]}
    assert snapshot.processes == snapshot.mounts == snapshot.links == []


def test_snapshot_differences_name_what_was_added_and_removed() -> None:
    before = node.HostSnapshot({"kernel.panic": "1"}, {"ip6/filter": ["a"]}, [], [], False)
    after = node.HostSnapshot(
        {"kernel.panic": "10"}, {"ip6/filter": ["a", "b"]}, [], [], True, links=["pbr0"]
    )
    assert before.differences(before) == {}
    assert before.differences(after) == {
        "sysctls": {"kernel.panic": {"before": "1", "after": "10"}},
        "iptables": {"ip6/filter": {"added": ["b"], "removed": []}},
        "bridge": {"before": False, "after": True},
        "links": {"added": ["pbr0"], "removed": []},
    }


def test_teardown_without_a_recorded_node_does_nothing(tmp_path: Path) -> None:
    assert node.teardown(tmp_path / "never-started") == []
    assert not (tmp_path / "never-started").exists()


def test_api_server_certificate_is_valid_for_the_pod_side_addresses(tmp_path: Path) -> None:
    """Pods verify the API server at the kubernetes Service's ClusterIP and through the
    bridge gateway it advertises."""
    pki = certs.generate(tmp_path)
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(pki.serving_cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:10.96.0.1" in text
    assert f"IP Address:{node.GATEWAY}" in text


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")


def _sleeper(tmp_path: Path, cwd: Path, *extra: str) -> subprocess.Popen[bytes]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *extra],
        cwd=cwd,
        start_new_session=True,
    )


@linux_only
def test_start_ticks_identify_a_live_process_and_not_a_zombie(tmp_path: Path) -> None:
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert node.start_ticks(os.getpid()) == int(stat.rsplit(")", 1)[1].split()[19])
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Exited but not reaped: a zombie holds nothing and is not the recorded process.
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        os.sched_yield()
    assert node.start_ticks(child.pid) is None
    child.wait()
    assert node.start_ticks(child.pid) is None


@linux_only
def test_a_record_with_other_start_ticks_is_not_that_process(tmp_path: Path) -> None:
    proc = _sleeper(tmp_path, tmp_path)
    try:
        ticks = node.start_ticks(proc.pid)
        assert node._alive({"name": "x", "pid": proc.pid, "startTicks": ticks}) is not None
        assert node._alive({"name": "x", "pid": proc.pid, "startTicks": ticks + 1}) is None
    finally:
        proc.kill()
        proc.wait()


@linux_only
def test_node_processes_are_found_by_the_nodes_directory_and_ended(tmp_path: Path) -> None:
    """Without any record: by working directory (what the node spawns runs there) or by
    an argument naming a path in it (a shim's ``-address``); nothing else."""
    state = tmp_path / "node"
    in_dir = _sleeper(tmp_path, state / "kubelet")
    by_arg = _sleeper(tmp_path, tmp_path, "-address", str(state / "containerd.sock"))
    by_option = _sleeper(tmp_path, tmp_path, f"--root-dir={state}")
    other = _sleeper(tmp_path, tmp_path / "elsewhere", f"--root-dir={tmp_path}/node2")
    mine = [in_dir, by_arg, by_option]
    try:
        found = node.node_processes(state.resolve(), {"processes": []})
        assert sorted(p.pid for p in found) == sorted(p.pid for p in mine)
        assert node._end(found, timeout=5) == []
        assert all(p.poll() is not None for p in mine)
        assert other.poll() is None
    finally:
        for proc in [*mine, other]:
            proc.kill()
            proc.wait()
