"""The build jail: every builder runs inside bubblewrap, seeing its sources and its toolchain.

A build is a `BuildRoom`: a fresh temporary directory holding the build's own copy of the
tool's ``src/`` (``/src``, read-only), an output directory (``/out``) and a scratch directory
(``/tmp``), the only writable places. Builders add their toolchain with `BuildRoom.bind`
(read-only unless they ask) and run commands with `BuildRoom.run`. In the jail:

- every namespace is new (user, mount, pid, network, IPC, UTS, cgroup): no network but a
  loopback of its own, no process of the host, a ``/proc`` of its own pid namespace;
- the process runs as uid 65534 with no capabilities, a new session, an empty environment
  (plus what the builder sets), ``/`` and ``/dev`` read-only, and dies with its parent;
- `BuildLimits` bound its time, its private memory, the size of any file it writes, its
  open files and (when the build user is not root) its processes, through ``prlimit``.

No bind may contain the user's home, a workspace or a keyring, or lie inside a keyring
(`protected_paths`), so private keys are never reachable from a build, however it was fooled.

Without bubblewrap the build is refused (`JailUnavailable`) unless the operator sets
``OURO_UNJAILED_BUILDS=1``: then the same commands run on the host with host paths, the
limits still apply, and nothing else isolates them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ouroboros.kernel.keys import keyring_roots
from ouroboros.kernel.workspace import resolve_home

from ..errors import BuildFailed, JailUnavailable
from .sources import write_tree

OPT_OUT_ENV = "OURO_UNJAILED_BUILDS"
JAIL_UID = 65534
SANDBOX_PATH = "/usr/bin:/bin"
_SIGXFSZ = int(signal.SIGXFSZ)
_SIGXCPU = int(signal.SIGXCPU)


@dataclass(frozen=True)
class BuildLimits:
    """What one build may consume.

    `memory_bytes` caps private writable memory (``RLIMIT_DATA``: wasmtime's large address
    reservations do not count, what a compiler fills does); `file_bytes` caps every file the
    build writes (``RLIMIT_FSIZE``: the write fails or the compiler is killed) and so the
    module it produces; `processes` applies when the build user is not root (the kernel
    exempts root); `log_bytes` is how much of the compiler's output is kept for the message.
    `timeout_s` is both the wall-clock deadline and the CPU budget (``RLIMIT_CPU``: SIGXCPU
    at it, so a compiler whose threads spend it first is reported as such).
    """

    timeout_s: float = 300.0
    memory_bytes: int = 4 << 30
    file_bytes: int = 64 << 20
    open_files: int = 1024
    processes: int = 256
    log_bytes: int = 64 << 10

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.memory_bytes, self.file_bytes, self.open_files,
               self.processes, self.log_bytes) <= 0:
            raise ValueError("build limits must be positive")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Ran:
    """A command that ran to its end (a time-out or a refusal raises instead)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """What the compiler said, for an error message."""
        return (self.stderr + self.stdout).strip()


def jail_mode() -> str:
    """``"bwrap"`` when builds can be jailed here, ``"off"`` when the operator opted out.

    Raises:
        JailUnavailable: bubblewrap is missing or cannot create a sandbox, and no opt-out.
    """
    if shutil.which("prlimit") is None:
        raise JailUnavailable("builds run under `prlimit` (util-linux), which is not on PATH",
                              "install the Debian package `util-linux`")
    if os.environ.get(OPT_OUT_ENV) == "1":
        return "off"
    problem = _bwrap_problem(shutil.which("bwrap"))
    if problem:
        raise JailUnavailable(
            f"builds run in a bubblewrap jail and {problem}",
            "install the Debian package `bubblewrap` (scripts/bootstrap.sh does), or set "
            f"{OPT_OUT_ENV}=1 to build without isolation (unsafe: a tool's build then sees "
            "the host's files)",
        )
    return "bwrap"


@functools.cache
def _bwrap_problem(bwrap: str | None) -> str | None:
    """None when `bwrap` can start a jail here (checked once per binary and process)."""
    if bwrap is None:
        return "`bwrap` is not on PATH"
    try:
        done = subprocess.run(
            [bwrap, *_namespace_args(), "--ro-bind", "/", "/", "true"],
            capture_output=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`{bwrap}` cannot run: {e}"
    if done.returncode != 0:
        return f"`{bwrap}` cannot create a sandbox here: " + done.stderr.decode(
            "utf-8", "replace").strip()
    return None


def _namespace_args() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--uid", str(JAIL_UID), "--gid", str(JAIL_UID),
            "--cap-drop", "ALL", "--new-session", "--die-with-parent", "--clearenv"]


def protected_paths() -> tuple[list[Path], list[Path]]:
    """(paths no bind may contain, paths no bind may lie inside): the home directory, the
    workspace and every keyring may not be exposed; nothing inside a keyring may be bound."""
    keyrings = [_real(p) for p in keyring_roots()]
    workspace = _real(resolve_home())
    keyrings.append(workspace / "keys")
    return [_real(Path.home()), workspace, *keyrings], keyrings


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def check_mount_source(source: Path) -> None:
    """Refuse a bind that would expose a protected path.

    Raises:
        JailUnavailable: naming the path and what it would expose.
    """
    real = _real(source)
    no_ancestor, no_inside = protected_paths()
    for p in no_ancestor:
        if p == real or p.is_relative_to(real):
            raise JailUnavailable(
                f"refusing to show {real} to a build: it holds {p}",
                "keep workspaces and keys outside the toolchain, cache and temp folders",
            )
    for p in no_inside:
        if real.is_relative_to(p):
            raise JailUnavailable(f"refusing to show {real} to a build: it is inside the "
                                  f"keyring {p}")


@dataclass
class BuildRoom:
    """One build's private directories and the commands run in them (a context manager).

    Paths given to commands are the paths the command sees: `src`, `out` and `tmp` (and the
    targets of `bind`) are jail paths when jailed, host paths when the operator opted out.
    """

    files: Mapping[str, bytes]
    limits: BuildLimits = field(default_factory=BuildLimits)
    mode: str = field(default_factory=jail_mode)
    memory_tmp: bool = False  # /tmp in /dev/shm, for builders that copy big files there
    _dir: Path | None = None
    _mounts: list[Mount] = field(default_factory=list)
    _links: list[tuple[str, str]] = field(default_factory=list)
    _memory: list[Path] = field(default_factory=list)

    def __enter__(self) -> BuildRoom:
        self._dir = Path(tempfile.mkdtemp(prefix="ouro-build-"))
        for sub in ("src", "out", "logs"):
            (self._dir / sub).mkdir(mode=0o755)
        if self.memory_tmp and shm_has_room():
            (self._dir / "tmp").symlink_to(self.scratch("tmp", memory=True))
        else:
            (self._dir / "tmp").mkdir(mode=0o755)
        write_tree({rel: data for rel, data in self.files.items() if rel.startswith("src/")},
                   self._dir / "src")
        return self

    def __exit__(self, *exc: object) -> None:
        for path in [self._dir, *self._memory]:
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    @property
    def host_dir(self) -> Path:
        assert self._dir is not None, "use BuildRoom as a context manager"
        return self._dir

    @property
    def jailed(self) -> bool:
        return self.mode == "bwrap"

    @property
    def src(self) -> str:
        return "/src" if self.jailed else str(self.host_dir / "src")

    @property
    def out(self) -> str:
        return "/out" if self.jailed else str(self.host_dir / "out")

    @property
    def tmp(self) -> str:
        return "/tmp" if self.jailed else os.path.realpath(self.host_dir / "tmp")

    def scratch(self, name: str, *, memory: bool = False) -> Path:
        """A fresh host directory of this build (a builder's private writable state), in
        ``/dev/shm`` with `memory`; removed with the room."""
        if memory:
            path = Path(tempfile.mkdtemp(prefix=f"ouro-build-{name}-", dir="/dev/shm"))
            self._memory.append(path)
            return path
        path = self.host_dir / "scratch" / name
        path.mkdir(parents=True)
        return path

    def bind(self, source: Path, target: str | None = None, *, writable: bool = False) -> str:
        """Make a host path visible to the build; returns the path the build sees it at."""
        check_mount_source(source)
        target = target or str(source)
        self._mounts.append(Mount(Path(source), target, writable))
        return target if self.jailed else str(source)

    def run(self, argv: Sequence[str], env: Mapping[str, str], what: str) -> Ran:
        """Run one command to its end under the limits, in the jail unless opted out.

        Raises:
            BuildFailed: it timed out, or wrote a file past the size cap.
        """
        logs = self.host_dir / "logs"
        out_path, err_path = logs / "stdout", logs / "stderr"
        full_env = {"PATH": SANDBOX_PATH, "HOME": "/nonexistent", "LANG": "C.UTF-8",
                    "TMPDIR": self.tmp, **env}
        info_read, info_write = os.pipe()
        command = [*self._prlimit(), *self._wrap(argv, full_env, info_write)]
        try:
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    env=full_env if not self.jailed else {"PATH": os.environ.get("PATH", "")},
                    cwd=self.host_dir / "src", start_new_session=True, pass_fds=(info_write,),
                )
                os.close(info_write)
                info_write = -1
                try:
                    code = proc.wait(timeout=self.limits.timeout_s)
                except subprocess.TimeoutExpired:
                    _kill(proc)
                    raise BuildFailed(f"{what} took longer than {self.limits.timeout_s:g} s "
                                      "(the build was killed)") from None
                finally:
                    _await_namespace_end(info_read)
        finally:
            os.close(info_read)
            if info_write >= 0:
                os.close(info_write)
        ran = Ran(code, self._shown(out_path), self._shown(err_path))
        if code in (-_SIGXFSZ, 128 + _SIGXFSZ) or (code != 0 and self._hit_file_cap()):
            raise BuildFailed(f"{what} wrote a file larger than the "
                              f"{self.limits.file_bytes}-byte cap (the build was killed)",
                              ran.output)
        signum = -code if code < 0 else code - 128 if self.jailed and code > 128 else 0
        if signum == _SIGXCPU:
            # a compiler on several threads spends the CPU budget before the wall clock's
            raise BuildFailed(f"{what} used more than {math.ceil(self.limits.timeout_s)} s of "
                              "CPU time (the build was killed)", ran.output)
        if signum > 0:
            lim = self.limits
            raise BuildFailed(
                f"{what} died of {_signal_name(signum)}; a build may use {lim.memory_bytes} "
                f"bytes of memory, write files of up to {lim.file_bytes} bytes (the file cap) "
                f"and run {lim.timeout_s:g} s", ran.output)
        return ran

    def _hit_file_cap(self) -> bool:
        """Whether a file the build wrote reached the cap (a compiler that ignores SIGXFSZ
        fails its write with EFBIG and may abort with no word about it)."""
        writable = [m.source for m in self._mounts if m.writable]
        for top in (self.host_dir / "out", Path(os.path.realpath(self.host_dir / "tmp")),
                    *writable):
            for folder, _, names in os.walk(top):
                for name in names:
                    with contextlib.suppress(OSError):
                        if os.lstat(os.path.join(folder, name)).st_size >= self.limits.file_bytes:
                            return True
        return False

    def _shown(self, path: Path) -> str:
        """The head of a log, with the build's own directories left out of paths."""
        with open(path, "rb") as fh:
            text = fh.read(self.limits.log_bytes).decode("utf-8", "replace")
        return text.replace(self.src + "/", "").replace(self.out + "/", "")

    def read_output(self, name: str) -> bytes:
        """A file the build wrote to its output directory: a regular file, not a link, no
        larger than the file cap.

        Raises:
            BuildFailed: it is missing, a link or not a regular file, or too large.
        """
        path = self.host_dir / "out" / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BuildFailed(f"the build wrote no {name}") from None
        except OSError as e:
            raise BuildFailed(f"the build's {name} cannot be opened safely: {e.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BuildFailed(f"the build's {name} is not a regular file")
            data = fh.read(self.limits.file_bytes + 1)
        if len(data) > self.limits.file_bytes:
            raise BuildFailed(f"the build's {name} is larger than the "
                              f"{self.limits.file_bytes}-byte cap")
        return data

    def bind_system_libraries(self) -> None:
        """The host's shared libraries, for dynamically linked toolchains (Python, rustc);
        merged-/usr links such as ``/lib -> usr/lib`` are re-created as links."""
        for lib in ("/usr/lib", "/usr/lib64", "/lib", "/lib64"):
            path = Path(lib)
            if path.is_symlink():
                self._links.append((os.readlink(path), lib))
            elif path.is_dir():
                self.bind(path)

    # -- the command line ------------------------------------------------------------------

    def _prlimit(self) -> list[str]:
        lim = self.limits
        args = ["prlimit", f"--data={lim.memory_bytes}", f"--fsize={lim.file_bytes}",
                f"--nofile={lim.open_files}", "--core=0",
                # SIGXCPU at the budget names the cause; SIGKILL a second later if ignored
                f"--cpu={math.ceil(lim.timeout_s)}:{math.ceil(lim.timeout_s) + 1}"]
        if os.getuid() != 0:  # RLIMIT_NPROC counts the user's every process; root ignores it
            args.append(f"--nproc={_processes_of_user() + lim.processes}")
        return [*args, "--"]

    def _wrap(self, argv: Sequence[str], env: Mapping[str, str], info_fd: int) -> list[str]:
        if not self.jailed:
            return list(argv)
        bwrap = shutil.which("bwrap")
        if bwrap is None:  # removed since jail_mode() looked
            raise JailUnavailable("`bwrap` is no longer on PATH")
        host = self.host_dir
        check_mount_source(host)
        args = [bwrap, *_namespace_args(), "--proc", "/proc", "--dev", "/dev",
                "--ro-bind", str(host / "src"), "/src",
                "--bind", str(host / "out"), "/out",
                "--bind", os.path.realpath(host / "tmp"), "/tmp"]
        for m in sorted(self._mounts, key=lambda m: m.target.count("/")):
            args += ["--bind" if m.writable else "--ro-bind", str(m.source), m.target]
        for target, link in self._links:
            args += ["--symlink", target, link]
        args += ["--remount-ro", "/dev", "--remount-ro", "/"]
        for key, value in sorted(env.items()):
            args += ["--setenv", key, value]
        return [*args, "--info-fd", str(info_fd), "--chdir", "/src", "--", *argv]


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def shm_has_room(min_free: int = 1 << 30) -> bool:
    """Whether ``/dev/shm`` can take a build's scratch files (a writable tmpfs with room)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return False
    return os.access("/dev/shm", os.W_OK) and st.f_bavail * st.f_frsize >= min_free


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (bwrap's pid namespace dies with it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _await_namespace_end(info_read: int, limit_s: float = 10.0) -> None:
    """Wait until the jail's first process has exited: the kernel kills, and waits for, every
    other process of a pid namespace before its init turns zombie, so none of the build's
    processes outlives that (the zombie itself is reaped by whoever inherits it)."""
    os.set_blocking(info_read, False)
    try:
        info = json.loads(os.read(info_read, 4096) or b"{}")
    except (BlockingIOError, ValueError):
        return  # not jailed, or bwrap never started
    pid = info.get("child-pid") if isinstance(info, dict) else None
    if not isinstance(pid, int):
        return
    deadline = time.monotonic() + limit_s
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _processes_of_user() -> int:
    uid = os.getuid()
    count = 0
    for entry in _proc_entries():
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                count += 1
        except OSError:
            continue
    return count


def _proc_entries() -> Iterator[str]:
    try:
        yield from (e for e in os.listdir("/proc") if e.isdigit())
    except OSError:
        return
