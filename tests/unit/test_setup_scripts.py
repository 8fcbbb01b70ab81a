"""The set-up scripts behind `make install` and `make tools` stop with one clear line.

`hack/venv.sh` (the project venv) refuses a missing or too old Python, installs from the
hash-pinned requirements/dev.lock only and refuses a lock `pip check` finds incomplete;
`hack/go-toolchain.sh` (sourced by the build scripts) refuses a missing Go, and makes a too
old one usable: Go's own toolchain switching from 1.21 on, the golang.org/toolchain module
before that. The
interpreters and `go` programs here are small stand-ins on PATH that answer like the real
ones would; CI runs the real path (`make install PYTHON=/usr/bin/python3`, `make tools`).
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_SH = REPO / "hack" / "venv.sh"
GO_SH = REPO / "hack" / "go-toolchain.sh"
KUBERNETES_MOD = REPO / "hack" / "controlplane" / "kubernetes" / "go.mod"
ETCD_MOD = REPO / "hack" / "controlplane" / "etcd" / "go.mod"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def highest_go_directive() -> str:
    versions = []
    for mod in (KUBERNETES_MOD, ETCD_MOD):
        line = next(x for x in mod.read_text().splitlines() if x.startswith("go "))
        versions.append(tuple(int(p) for p in line.split()[1].split(".")))
    return ".".join(str(p) for p in max(versions))


def run_go_check(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    script = (
        f'source "{GO_SH}"; pb_ensure_go "{KUBERNETES_MOD}" "{ETCD_MOD}" || exit $?; '
        'echo "GOTOOLCHAIN=${GOTOOLCHAIN:-}"; echo "GO=$(command -v go)"'
    )
    env = {"PATH": path, "HOME": str(tmp_path), "PAGERBRIDGE_TOOLS_DIR": str(tmp_path / "tools")}
    return subprocess.run(
        ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_venv_refuses_a_python_older_than_311(tmp_path: Path):
    old = executable(
        tmp_path / "python3.9",
        '#!/bin/sh\ncase "$2" in *platform*) echo 3.9.2 ;; *) exit 1 ;; esac\n',
    )
    result = subprocess.run(
        ["bash", str(VENV_SH)],
        env={**os.environ, "PYTHON": str(old), "VENV": str(tmp_path / "venv")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert ">= 3.11" in lines[0]
    assert "3.9.2" in lines[0]
    assert not (tmp_path / "venv").exists()


def test_venv_names_a_missing_python(tmp_path: Path):
    result = subprocess.run(
        ["bash", str(VENV_SH)],
        env={**os.environ, "PYTHON": str(tmp_path / "nope"), "VENV": str(tmp_path / "venv")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "not found" in lines[0]


def _recording_python(tmp_path: Path, check_exit: int = 0) -> tuple[Path, Path]:
    """A Python >= 3.11 stand-in whose ``-m venv DIR`` makes DIR/bin/python a recorder of
    every call (its pip answers 0; ``pip check`` answers ``check_exit``)."""
    calls = tmp_path / "calls"
    inner = (
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        f'[ "$1 $2 $3" = "-m pip check" ] && echo "foo 1.0 requires bar, which is not '
        f'installed." && exit {check_exit}\n'
        'case "$2" in *platform*) echo 3.11.9 ;; esac\n'
        "exit 0\n"
    )
    outer = executable(
        tmp_path / "python3.11",
        "#!/bin/sh\n"
        'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin"; '
        f"cat > \"$3/bin/python\" <<'EOF'\n{inner}EOF\n"
        'chmod +x "$3/bin/python"; exit 0; fi\n'
        'case "$2" in *platform*) echo 3.11.9 ;; esac\n'
        "exit 0\n",
    )
    return outer, calls


def test_venv_installs_only_from_the_hash_pinned_lock(tmp_path: Path):
    python, calls = _recording_python(tmp_path)
    result = subprocess.run(
        ["bash", str(VENV_SH)],
        env={**os.environ, "PYTHON": str(python), "VENV": str(tmp_path / "venv")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    pip = [line.split() for line in calls.read_text().splitlines() if line.startswith("-m pip")]
    installs = [args for args in pip if args[2] == "install"]
    # First the lock, every package hash-checked; then our own two projects, editable,
    # without resolving anything further; then pip check.
    lock, own = installs
    assert "--require-hashes" in lock
    assert lock[lock.index("-r") + 1] == "requirements/dev.lock"
    assert "--no-deps" in own
    assert "--no-build-isolation" in own
    assert [a for a in own if not a.startswith("-")][1:] == ["install", ".", "./devkit"]
    assert ["-m", "pip", "check"] in pip
    # Nothing unpinned: no upgrade, no requirement named outside the lock.
    for args in installs:
        assert "--upgrade" not in args
        assert "-U" not in args
        assert not any("[" in a or ">=" in a for a in args), args


def test_venv_refuses_an_incomplete_lock_with_one_line(tmp_path: Path):
    python, _ = _recording_python(tmp_path, check_exit=1)
    result = subprocess.run(
        ["bash", str(VENV_SH)],
        env={**os.environ, "PYTHON": str(python), "VENV": str(tmp_path / "venv")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "requirements/dev.lock is incomplete (run 'make lock')" in lines[0]
    assert "bar" in lines[0]


def test_no_go_stops_with_one_line_naming_what_to_install(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("awk", "sort", "head", "printf"):
        os.symlink(f"/usr/bin/{tool}", bin_dir / tool)
    result = run_go_check(tmp_path, str(bin_dir))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "golang-go" in lines[0]


def test_go_121_or_newer_switches_toolchain_itself(tmp_path: Path):
    executable(
        tmp_path / "bin" / "go",
        '#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && echo go1.22.1 && exit 0\nexit 3\n',
    )
    result = run_go_check(tmp_path, f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert f"GOTOOLCHAIN=go{highest_go_directive()}+auto" in result.stdout.splitlines()


def test_go_new_enough_is_used_as_it_is(tmp_path: Path):
    executable(
        tmp_path / "bin" / "go",
        '#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && echo go99.0.0 && exit 0\nexit 3\n',
    )
    result = run_go_check(tmp_path, f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert "GOTOOLCHAIN=" in result.stdout.splitlines()
    assert f"GO={tmp_path / 'bin' / 'go'}" in result.stdout.splitlines()


def test_go_before_121_fetches_the_toolchain_module_and_makes_it_runnable(tmp_path: Path):
    # A Go 1.19 stand-in whose `go mod download -json` answers like the real one: a
    # read-only module tree without file modes (as module zips extract).
    module = tmp_path / "modcache" / "golang.org" / "toolchain@v0.0.1"
    new_go = module / "bin" / "go"
    new_go.parent.mkdir(parents=True)
    new_go.write_text("#!/bin/sh\necho go version go-from-module\n")
    (module / "pkg" / "tool" / "linux_amd64").mkdir(parents=True)
    (module / "pkg" / "tool" / "linux_amd64" / "compile").write_text("#!/bin/sh\n")
    for path in [new_go, module / "pkg" / "tool" / "linux_amd64" / "compile"]:
        path.chmod(0o444)
    calls = tmp_path / "calls"
    executable(
        tmp_path / "bin" / "go",
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        'case "$1 $2" in\n'
        '  "env GOVERSION") echo "" ;;\n'
        '  "version ") echo "go version go1.19.8 linux/amd64" ;;\n'
        '  "env GOARCH") echo amd64 ;;\n'
        '  "env GOOS") echo linux ;;\n'
        f'  "mod download") printf \'{{\\n\\t"Dir": "{module}"\\n}}\\n\' ;;\n'
        "  *) exit 3 ;;\n"
        "esac\n",
    )
    result = run_go_check(tmp_path, f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    wanted = f"golang.org/toolchain@v0.0.1-go{highest_go_directive()}.linux-amd64"
    assert any(
        line.startswith("mod download") and wanted in line
        for line in calls.read_text().splitlines()
    )
    copied = tmp_path / "tools" / f"go{highest_go_directive()}"
    assert f"GO={copied / 'bin' / 'go'}" in result.stdout.splitlines()
    assert os.access(copied / "bin" / "go", os.X_OK)
    assert os.access(copied / "pkg" / "tool" / "linux_amd64" / "compile", os.X_OK)
    assert "GOTOOLCHAIN=local" in result.stdout.splitlines()
