"""The build jail itself, attacked from inside: each probe is arbitrary code running where a
compiler runs (as a compromised toolchain would), set up exactly as the Python builders are.
It must find no key, no workspace, no home, no host process, no network, no environment and
nowhere to write but its output, and it cannot outlive or outgrow its limits."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills.builders import mount_python, rust_sysroot
from ouroboros.capabilities.skills.building.jail import (
    BuildFailed,
    BuildLimits,
    BuildRoom,
    jail_mode,
)
from ouroboros.capabilities.skills.errors import JailUnavailable

from .conftest import Ward, spec

LIMITS = BuildLimits(timeout_s=60, memory_bytes=1 << 30, file_bytes=8 << 20)


def probe(code: str, limits: BuildLimits = LIMITS) -> dict[str, Any]:
    """Run `code` (which prints one JSON line) in a jail set up like the Python builders'."""
    with BuildRoom({"src/main.py": b"pass\n"}, limits) as room:
        assert room.jailed
        python, _ = mount_python(room)
        ran = room.run([python, "-I", "-c", code], {}, "the probe")
    assert ran.returncode == 0, ran.output
    result: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def test_the_workspace_key_and_keyring_are_not_there(ward: Ward) -> None:
    keys = ward.home / "keys"
    got = probe(f"""
import json, os
def attempt(p):
    try:
        with open(p, 'rb') as f: return 'read ' + str(len(f.read()))
    except OSError as e: return type(e).__name__
mounts = open('/proc/self/mountinfo').read()
print(json.dumps({{"key": attempt({str(ward.key_path)!r}),
                  "keys": os.path.exists({str(keys)!r}),
                  "ws": os.path.exists({str(ward.home)!r}),
                  "mounted": {str(ward.home)!r} in mounts}}))
""")
    assert got == {"key": "FileNotFoundError", "keys": False, "ws": False, "mounted": False}


def test_home_shows_nothing_but_the_toolchain_folders_bound_inside_it() -> None:
    home = Path.home()
    got = probe(f"""
import json, os
h = {str(home)!r}
print(json.dumps(sorted(os.listdir(h)) if os.path.isdir(h) else []))
""")
    import sys

    toolchain = {Path(p).resolve() for p in (sys.base_prefix, sys.prefix)}
    allowed = {p.relative_to(home).parts[0] for p in toolchain if p.is_relative_to(home)}
    assert set(got) <= allowed
    assert ".ssh" not in got and ".bashrc" not in got and ".cache" not in got


def test_the_environment_is_empty_but_for_what_the_builder_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OURO_KEY_PASSPHRASE", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    got = probe("import json, os; print(json.dumps(dict(os.environ)))")
    assert set(got) <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD", "LC_CTYPE"}
    assert "hunter2" not in json.dumps(got) and got["HOME"] == "/nonexistent"


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(5)
    accepted: list[object] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    with contextlib.suppress(OSError):
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept
    server.close()
    thread.join()


def test_no_network_reaches_the_host_or_the_world(listener: tuple[int, list[object]]) -> None:
    port, accepted = listener
    got = probe(f"""
import json, socket
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close(); return 'connected'
    except OSError as e: return type(e).__name__
ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]
print(json.dumps({{"host": attempt('127.0.0.1', {port}), "world": attempt('1.1.1.1', 443),
                  "dns": attempt('pypi.org', 443), "ifaces": ifaces}}))
""")
    assert got["host"] != "connected" and got["world"] != "connected"
    assert got["dns"] != "connected" and got["ifaces"] == ["lo"]
    assert accepted == []


def test_no_host_process_is_visible() -> None:
    got = probe("""
import json, os
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print(json.dumps({"pids": pids, "init": open('/proc/1/cmdline', 'rb').read().decode(errors='replace')}))
""")
    assert os.getpid() not in got["pids"] and len(got["pids"]) < 10
    assert "bwrap" in got["init"]


def test_it_runs_as_nobody_without_capabilities_or_new_privileges() -> None:
    got = probe("""
import json, os
status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
print(json.dumps({"uid": os.getuid(), "cap": status['CapEff'].strip(),
                  "nnp": status['NoNewPrivs'].strip()}))
""")
    assert got == {"uid": 65534, "cap": "0000000000000000", "nnp": "1"}


def test_nothing_is_writable_but_out_and_tmp() -> None:
    import sys

    targets = ["/", "/src", "/src/src/main.py", "/usr/lib", sys.prefix, sys.base_prefix,
               "/dev", "/proc/sys/kernel", "/out", "/tmp"]
    got = probe(f"""
import json, os
def attempt(d):
    try:
        p = d if not os.path.isdir(d) else os.path.join(d, 'pwned')
        with open(p, 'w') as f: f.write('x')
        return 'written'
    except OSError as e: return type(e).__name__
print(json.dumps({{d: attempt(d) for d in {targets!r}}}))
""")
    assert got.pop("/out") == "written" and got.pop("/tmp") == "written"
    assert "written" not in got.values(), got


SLEEPER = "import sys, time; time.sleep(1000)"


def test_children_die_with_the_build() -> None:
    marker = "ouro-probe-4242"
    probe(f"""
import json, subprocess, sys
for _ in range(32):
    subprocess.Popen([sys.executable, '-c', {SLEEPER!r}, '{marker}'], start_new_session=True)
print(json.dumps({{"spawned": 32}}))
""")
    assert _processes_with(marker) == []


def test_a_fork_loop_is_killed_at_the_deadline_and_leaves_nothing() -> None:
    marker = "ouro-probe-4343"
    code = f"""
import subprocess, sys, time
while True:
    subprocess.Popen([sys.executable, '-c', {SLEEPER!r}, '{marker}'])
    time.sleep(0.05)
"""
    with pytest.raises(BuildFailed, match=r"took longer than 3 s"):
        probe(code, BuildLimits(timeout_s=3, memory_bytes=1 << 30, file_bytes=8 << 20))
    assert _processes_with(marker) == []


def test_no_file_grows_past_the_size_cap() -> None:
    # A compiler is killed by SIGXFSZ (see test_build_limits.py); Python ignores the signal
    # and sees EFBIG, which shows the cap itself.
    got = probe("""
import json, os
try:
    with open('/out/huge', 'wb') as f: f.write(b'x' * (4 << 20)); r = 'written'
except OSError as e: r = e.strerror
print(json.dumps({"r": r, "size": os.path.getsize('/out/huge')}))
""", BuildLimits(timeout_s=60, memory_bytes=1 << 30, file_bytes=1 << 20))
    assert got == {"r": "File too large", "size": 1 << 20}


def test_memory_past_the_cap_is_refused_to_the_build() -> None:
    got = probe("""
import json
try:
    b = bytearray(3 << 30); r = 'allocated'
except MemoryError: r = 'MemoryError'
print(json.dumps({"r": r}))
""")
    assert got == {"r": "MemoryError"}


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and b"ouro-probe-" + marker.split("-")[-1].encode() in cmd \
                and b"import subprocess" not in cmd:
            found.append(int(pid))
    return found


# -- what may be shown to a build ---------------------------------------------------------


def test_a_bind_that_would_show_a_workspace_or_keyring_is_refused(ward: Ward) -> None:
    with BuildRoom({"src/main.py": b""}) as room:
        for path in (ward.home, ward.home / "keys", ward.home.parent, Path.home(), Path("/")):
            with pytest.raises(JailUnavailable, match="refusing to show"):
                room.bind(path)


def test_nothing_inside_a_keyring_may_be_bound(ward: Ward) -> None:
    with BuildRoom({"src/main.py": b""}) as room, pytest.raises(JailUnavailable,
                                                                   match="inside the keyring"):
        room.bind(ward.key_path)


def test_rustc_runs_in_the_jail_with_only_its_sysroot() -> None:
    if shutil.which("rustc") is None:
        pytest.skip("no rustc on this host")
    with BuildRoom({"src/main.rs": b"fn main() {}\n"}, LIMITS) as room:
        room.bind_system_libraries()
        sysroot = room.bind(rust_sysroot())
        ran = room.run([f"{sysroot}/bin/rustc", "--version"], {}, "rustc")
    assert ran.returncode == 0 and ran.stdout.startswith("rustc "), ran.output


# -- without bubblewrap -------------------------------------------------------------------


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "prlimit").symlink_to(shutil.which("prlimit") or "/usr/bin/prlimit")
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.delenv("OURO_UNJAILED_BUILDS", raising=False)


@pytest.mark.usefixtures("no_bwrap")
def test_without_bwrap_a_build_is_refused_with_the_fix(ward: Ward) -> None:
    with pytest.raises(JailUnavailable, match="not on PATH"):
        jail_mode()
    err = ward.refuses_spec(spec("python", "print(1)\n", runtime="micropython"), "jail",
                            r"bubblewrap jail and `bwrap` is not on PATH")
    assert "OURO_UNJAILED_BUILDS=1" in err.detail and "bubblewrap" in err.detail


@pytest.mark.usefixtures("no_bwrap")
def test_the_documented_opt_out_builds_without_the_jail(ward: Ward,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OURO_UNJAILED_BUILDS", "1")
    assert jail_mode() == "off"
    tool = spec("python", "import sys\nprint(sys.stdin.read())\n", name="echo",
                runtime="micropython", tests=json.dumps([{"input": 7, "expected": 7}]).encode())
    version = ward.store.add(tool)
    assert ward.store.run("echo", 7).output == 7 and version.tool_id == "echo"


def test_a_broken_bwrap_is_refused_not_bypassed(ward: Ward, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    fake = bare / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bare}:{os.environ['PATH']}")
    monkeypatch.delenv("OURO_UNJAILED_BUILDS", raising=False)
    ward.refuses_spec(spec("wat", '(module (func (export "_start")))'), "jail",
                      r"cannot create a sandbox here: bwrap: No permissions")
    assert subprocess.run([str(fake)], capture_output=True).returncode == 1


def test_a_build_stopped_by_the_cpu_budget_says_so() -> None:
    """RLIMIT_CPU's soft limit sends SIGXCPU: a compiler on several threads reaches the CPU
    budget before the wall clock, and the error names that budget (not a bare signal)."""
    code = "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n"
    with pytest.raises(BuildFailed, match=r"the probe used more than 3 s of CPU time "
                                          r"\(the build was killed\)"):
        probe(code, BuildLimits(timeout_s=3, memory_bytes=1 << 30, file_bytes=8 << 20))

