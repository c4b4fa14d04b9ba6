"""Zig in the jail: one shared toolchain cache that no tool's build can write.

Compiling wasi-libc and compiler_rt takes a fresh machine tens of seconds, so builds share
Zig's global cache. A cache every build could write would let one hostile build plant code
in the next one's module, so:

- the *pristine* cache (``$OURO_CACHE/zig-jail/<zig version>``) is written only by a warm-up:
  jailed builds of fixed programs (no tool's input), once per Zig version, under a lock;
- a tool's build gets the pristine ``o/`` (compiled artifacts) read-only, and its own copies
  of ``h/`` (manifests) and ``b/`` (generated ``builtin.zig``), plus ``z/`` (parsed sources)
  for Zig tools: Zig opens them read-write even on a hit, so they are copied, never linked
  (a hard link shares the pristine file's inode, which a build could write through). The
  copies go to memory (``/dev/shm``) where there is room, since 50 MB of small files take
  ten times longer on disk; whatever a build adds there stays private and goes with it.

Zig is mounted at `ZIG_MOUNT` in every jail, so the cache's recorded paths match across
builds, virtual environments and worktrees.
"""

from __future__ import annotations

import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

from ouroboros.storage.files import UNBOUNDED, flocked

from ..cache import cache_root
from ..errors import BuildFailed
from .jail import BuildLimits, BuildRoom, shm_has_room

ZIG_MOUNT = "/toolchain/zig"
CACHE_MOUNT = "/zigcache"
C_FLAGS = ("--target=wasm32-wasi", "-O2", "-s", "-Wl,-z,stack-size=1048576")
ZIG_FLAGS = ("-target", "wasm32-wasi", "-O", "ReleaseSmall")
_UNSHARED = ("timestamp",)  # rewritten by every compilation: never copied
_WARM_C = b"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <ctype.h>
int main(void) {
    char buf[64];
    if (!fgets(buf, sizeof buf, stdin)) return 1;
    double x = strtod(buf, NULL);
    printf("{\\"v\\": %g, \\"n\\": %zu}\\n", sqrt(fabs(x)), strlen(buf) + (size_t)toupper('a'));
    return 0;
}
"""
_WARM_ZIG = b"""const std = @import("std");
pub fn main() void {
    var buf: [64]u8 = undefined;
    const text = std.fmt.bufPrint(&buf, "{d}\\n", .{42}) catch return;
    var iov = [_]std.os.wasi.ciovec_t{.{ .base = text.ptr, .len = text.len }};
    var n: usize = 0;
    _ = std.os.wasi.fd_write(1, &iov, 1, &n);
}
"""


def zig_package() -> Path:
    """The `ziglang` wheel's folder (the ``zig`` binary and its ``lib/``)."""
    import ziglang

    return Path(ziglang.__file__).parent


def zig_version() -> str:
    import importlib.metadata  # only when a tool is built (email.parser and friends)

    return importlib.metadata.version("ziglang")


def pristine_dir() -> Path:
    """One pristine cache per Zig *installation*, not per version: Zig's manifests record
    the inode and mtime of every library source, so a cache warmed up by another venv's
    copy of the same version misses on every file, and the build then tries to write the
    read-only ``o/`` (seen as a ``CrossDevice`` failure on every C build)."""
    import hashlib

    package = zig_package().resolve()
    lib = (package / "lib").stat()
    key = f"{package}\0{lib.st_ino}\0{lib.st_mtime_ns}".encode()
    return cache_root() / "zig-jail" / f"{zig_version()}-{hashlib.sha256(key).hexdigest()[:12]}"


def c_command(zig: str, out: str, sources: list[str], depfile: str) -> list[str]:
    return [f"{zig}/zig", "cc", *C_FLAGS, "-MD", "-MF", depfile, "-o", out, *sources]


def zig_command(zig: str, out: str, source: str) -> list[str]:
    return [f"{zig}/zig", "build-exe", *ZIG_FLAGS, f"-femit-bin={out}", source]


def mount_zig(room: BuildRoom, *, parsed: bool = True) -> tuple[str, dict[str, str]]:
    """Show Zig and this build's cache to `room`: (the zig folder as seen, environment).

    `parsed` copies the cache's parsed Zig sources too (C builds do not read them).
    """
    zig = room.bind(zig_package(), ZIG_MOUNT)
    local = f"{room.tmp}/zig-local"
    if not room.jailed:  # the operator's opt-out: Zig's ordinary, shared, writable cache
        return zig, {"ZIG_GLOBAL_CACHE_DIR": str(cache_root() / "zig"),
                     "ZIG_LOCAL_CACHE_DIR": local}
    pristine = ensure_pristine()
    own = room.scratch("zigcache", memory=shm_has_room())
    for sub in ("h", "b", "z") if parsed else ("h", "b"):
        _copy_tree(pristine / sub, own / sub)
    for sub in ("o", "z", "tmp"):
        (own / sub).mkdir(exist_ok=True)
    room.bind(own, CACHE_MOUNT, writable=True)
    room.bind(pristine / "o", f"{CACHE_MOUNT}/o")
    return zig, {"ZIG_GLOBAL_CACHE_DIR": CACHE_MOUNT, "ZIG_LOCAL_CACHE_DIR": local}


def ensure_pristine() -> Path:
    """The pristine cache, warmed up first if this Zig version has none yet.

    Raises:
        BuildFailed: the warm-up builds failed (the toolchain is broken here).
    """
    pristine = pristine_dir()
    if (pristine / "ready").is_file():
        return pristine
    with _lock(pristine):
        if not (pristine / "ready").is_file():
            shutil.rmtree(pristine, ignore_errors=True)  # a warm-up that died half-way
            pristine.mkdir()
            _warm_up(pristine)
            (pristine / "ready").write_text(zig_version() + "\n")
    return pristine


def _lock(pristine: Path) -> AbstractContextManager[int]:
    """An exclusive lock on one pristine cache (across processes)."""
    pristine.parent.mkdir(parents=True, exist_ok=True)
    return flocked(pristine.parent / f".{pristine.name}.lock", mode=0o644,
                   timeout=UNBOUNDED)  # a build of the cache takes minutes


def _warm_up(pristine: Path) -> None:
    """Jailed builds of fixed C and Zig programs, with the pristine cache writable."""
    files = {"src/main.c": _WARM_C, "src/main.zig": _WARM_ZIG}
    with BuildRoom(files, BuildLimits(timeout_s=900)) as room:
        if not room.jailed:
            return
        zig = room.bind(zig_package(), ZIG_MOUNT)
        room.bind(pristine, CACHE_MOUNT, writable=True)
        env = {"ZIG_GLOBAL_CACHE_DIR": CACHE_MOUNT, "ZIG_LOCAL_CACHE_DIR": f"{room.tmp}/local"}
        for argv in (c_command(zig, f"{room.out}/c.wasm", ["src/main.c"], f"{room.tmp}/c.d"),
                     zig_command(zig, f"{room.out}/zig.wasm", "src/main.zig")):
            ran = room.run(argv, env, "warming up the Zig toolchain cache")
            if ran.returncode != 0:
                raise BuildFailed("the Zig toolchain fails on a known-good program here",
                                  ran.output)


def _copy_tree(source: Path, into: Path) -> None:
    """A real copy of a cache folder (files the pristine cache's warm-up wrote)."""
    into.mkdir()
    if not source.is_dir():
        return
    for entry in os.scandir(source):
        target = into / entry.name
        if entry.is_dir(follow_symlinks=False):
            _copy_tree(Path(entry.path), target)
        elif entry.is_file(follow_symlinks=False) and entry.name not in _UNSHARED:
            with open(entry.path, "rb") as src, open(target, "xb") as dst:
                dst.write(src.read())
