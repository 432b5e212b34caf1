"""Which kernel confinement the model worker gets here, detected at run time.

Order of preference (``XAI_SANDBOX=auto``, the default):

1. ``bubblewrap`` (Debian's ``bwrap``): new mount, network, PID, IPC and UTS
   namespaces; the whole file system bound read-only, a private ``/tmp``, the
   worker's scratch folder the only writable place, no network interface but
   loopback, all capabilities dropped, killed with its parent.
2. ``landlock`` (Linux >= 5.13, works in most containers where namespaces are
   refused): writes denied everywhere but the scratch folder; TCP bind/connect
   denied (ABI >= 4); signals and abstract sockets scoped to the worker (ABI >= 6);
   plus a private network namespace when the kernel lets us create one.
3. ``none``: the worker is still a separate process with limits and a deadline,
   but formats that carry code load only with the user's explicit trust.

Both confined modes add ``setrlimit`` limits (CPU seconds, file size, no core
dumps) and ``no_new_privs``; memory is watched by the parent (see ``worker.py``).
``XAI_SANDBOX=bwrap|landlock|none`` forces one (``none`` for debugging only).
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CPU_SECONDS = int(os.environ.get("XAI_WORKER_CPU_SECONDS", "7200"))
MAX_FILE_BYTES = 2 * 1024**3

# True inside a worker that runs under bubblewrap or Landlock: loaders then accept
# formats that carry code without the user's explicit trust.
CONFINED = False


def code_allowed(trust_code: bool) -> bool:
    """May a file that carries code (TorchScript, .pt2, SavedModel, pickles, Lambda) load?"""
    return trust_code or CONFINED


@dataclass(frozen=True)
class Protection:
    """The confinement in force: ``mechanism`` is bubblewrap, landlock or none."""

    mechanism: str
    detail: str

    @property
    def confined(self) -> bool:
        return self.mechanism != "none"

    def describe(self) -> str:
        if not self.confined:
            return ("No kernel confinement is available here: uploaded models run in a separate "
                    "process with limits, and files that carry code load only if you trust them.")
        return f"Uploaded models run in a confined worker ({self.mechanism}: {self.detail})."


@functools.cache
def detect() -> Protection:
    choice = os.environ.get("XAI_SANDBOX", "auto").strip().lower() or "auto"
    if choice not in ("auto", "bwrap", "bubblewrap", "landlock", "none"):
        choice = "auto"
    if choice in ("auto", "bwrap", "bubblewrap") and bwrap_works():
        return Protection("bubblewrap", "read-only file system but its scratch folder, no network, "
                                        "own PID namespace, memory/CPU limits, deadline")
    if choice in ("auto", "landlock") and landlock_abi() >= 1:
        net = "no TCP" if landlock_abi() >= 4 else "network open (Landlock ABI < 4)"
        return Protection("landlock", f"writes only to its scratch folder, {net}, memory/CPU limits, deadline")
    return Protection("none", "")


@functools.cache
def bwrap_works() -> bool:
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        done = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
             "--die-with-parent", "--cap-drop", "ALL", "true"],
            capture_output=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def hidden_code_paths() -> list[Path]:
    """What the worker runs from (this project, the virtual environment, Python itself,
    every import path) where the private ``/tmp`` or ``/dev/shm`` would hide it: a
    checkout or a venv under /tmp must stay importable inside the sandbox, read-only."""
    candidates = [Path(__file__).resolve().parents[2], Path(sys.prefix), Path(sys.base_prefix),
                  Path(sys.executable).resolve().parent, *(Path(p) for p in sys.path if p)]
    hidden: list[Path] = []
    for path in sorted({c.resolve() for c in candidates if c.is_dir()}, key=lambda p: len(p.parts)):
        if path.parts[:2] in (("/", "tmp"), ("/", "dev")) and len(path.parts) > 2 \
                and not any(path.is_relative_to(h) for h in hidden):
            hidden.append(path)
    return hidden


def wrap_command(argv: list[str], scratch: Path, readable: list[Path], protection: Protection) -> list[str]:
    """``argv`` run under the chosen mechanism (Landlock is applied by the worker itself)."""
    if protection.mechanism == "bubblewrap":
        cmd = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
        for dev in sorted(Path("/dev").glob("nvidia*")):  # a GPU stays usable
            cmd += ["--dev-bind-try", str(dev), str(dev)]
        for path in [*hidden_code_paths(), *readable]:  # e.g. an upload under /tmp, hidden by the private /tmp
            cmd += ["--ro-bind", str(path), str(path)]
        cmd += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch),
                "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--setenv", "HOME", str(scratch), "--setenv", "TMPDIR", str(scratch), "--"]
        return cmd + argv
    if protection.mechanism == "landlock":
        return argv + ["--landlock"]
    return argv


def limit_resources() -> None:
    """Run in the worker before exec: CPU seconds, file size, no core dumps."""
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# -- Landlock through its three system calls (x86-64 and aarch64 share the numbers) ----
_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_WRITE_FILE, _REMOVE_DIR, _REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_MAKE_ALL = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_REFER, _TRUNCATE = 1 << 13, 1 << 14


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def landlock_abi() -> int:
    if os.uname().machine not in ("x86_64", "aarch64"):
        return 0
    try:
        abi = _libc().syscall(_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(0, int(abi))


def apply_landlock(scratch: Path) -> None:
    """Confine the calling process: writes only under ``scratch`` (and /dev/null), no
    TCP, signals and abstract sockets scoped. Raises OSError when the kernel refuses."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available")
    libc = _libc()
    fs = _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_ALL
    fs |= _REFER if abi >= 2 else 0
    fs |= _TRUNCATE if abi >= 3 else 0
    fields = [fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0]  # net: bind+connect TCP; scoped
    size = 8 * (1 if abi < 4 else 2 if abi < 6 else 3)
    attr = (ctypes.c_uint64 * 3)(*fields)
    ruleset = libc.syscall(_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, access in ((scratch, fs), (Path("/dev/null"), _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(access, fd)
                if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule),
                                ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule {path} failed")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0:
            raise OSError(ctypes.get_errno(), "no_new_privs failed")
        if libc.syscall(_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    _try_private_network(libc)


def _try_private_network(libc) -> None:
    """A network namespace of our own (only loopback) where the kernel allows one."""
    clone_newuser, clone_newnet = 0x10000000, 0x40000000
    if os.geteuid() == 0:
        libc.unshare(clone_newnet)
    else:
        libc.unshare(clone_newuser | clone_newnet)
