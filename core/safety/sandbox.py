"""The OS sandbox around every process that unpickles or runs an uploaded model.

Why: the allowlisting unpickler (:mod:`core.safety.safe_pickle`) decides which classes a file may build, but an
allowed class can still be given state that makes it act (skops needed three CVE fixes in 2025 for exactly
that). So the process that holds the model is confined by the kernel as well, and a file that slips past
the allowlist can still do nothing but compute. Layers, in the order they are set up:

1. Early, while the process is still single-threaded: new network and IPC namespaces (a user namespace
   first when not root) where the kernel allows it, so the process has no network interface at all; a
   watchdog thread ends the worker within half a second of its parent's death (:func:`watch_parent`).
2. After the worker has imported its libraries (trusted code, before the first byte of an upload is read):
   * Landlock (file system): read-only access to the interpreter, its site-packages and ModelLens's own
     ``core`` package, the shared libraries, ``/proc/<own pid>``, a few files the C runtime reads; read and
     write only in the worker's private scratch directory (its working directory and ``$HOME``, deleted with
     it); executing nothing (or only the Azure AutoML runtime's interpreter, for the worker that starts it).
     From ABI 4 no TCP bind/connect; from ABI 6 no abstract UNIX sockets or signals outside the sandbox.
   * seccomp (every thread): no ``fork``/``vfork``/process ``clone``/``execve`` (threads are fine), no
     sockets, no ptrace or other processes' memory, no mounts, namespaces, keyrings, BPF, io_uring, module
     loading, ``open_by_handle_at``; ``kill`` only of itself. x32 and foreign architectures are killed.
   * all capabilities dropped (a worker started as root keeps root's uid but none of its powers).
3. A self-test tries a forbidden write, a read of the parent's ``/proc/<pid>/environ``, a socket, a fork and
   an exec; each must fail, or the sandbox is reported inactive and the server refuses uploads.

Limits (said plainly in SECURITY.md): Landlock confines the calling thread and every thread started after
it; threads that native libraries started during the import (BLAS, OpenMP) run only their own kernels and
keep the file-system view they had, while seccomp applies to all of them. CPU and memory are capped by
rlimits in :mod:`core.isolation.serve`. x86-64 only for the seccomp layer; elsewhere it is reported missing.

Must stay importable by Python 3.9 (the Azure AutoML runtime's worker applies it to itself): ctypes only.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import socket
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["SandboxReport", "SandboxSpec", "confine", "enter_early", "spec_env", "spec_from_env", "watch_parent"]

log = logging.getLogger(__name__)

CORE_DIR = Path(__file__).resolve().parents[1]
_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# x86-64 syscall numbers
_NR = {
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
    "seccomp": 317,
    "capset": 126,
    "unshare": 272,
}
_SPAWN_SYSCALLS = {"fork": 57, "vfork": 58, "execve": 59, "execveat": 322}
_DENIED_SYSCALLS = {
    **{"socket": 41, "socketpair": 53, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311},
    **{"pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424, "tkill": 200, "mount": 165},
    **{"umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "mknod": 133},
    **{"mknodat": 259, "open_by_handle_at": 304, "name_to_handle_at": 303, "bpf": 321, "perf_event_open": 298},
    **{"userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249, "init_module": 175},
    **{"finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169},
    **{"swapon": 167, "swapoff": 168, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427},
    **{"acct": 163, "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "iopl": 172, "ioperm": 173},
    **{"quotactl": 179, "syslog": 103, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsmount": 432},
    **{"fspick": 433, "mount_setattr": 442},
}
_CLONE, _CLONE3, _KILL, _TGKILL = 56, 435, 62, 234
_CLONE_THREAD = 0x00010000
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000

# Landlock (include/uapi/linux/landlock.h)
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_ABI1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_ALL = 0b11  # bind_tcp, connect_tcp (ABI 4)
_SCOPE_ALL = 0b11  # abstract unix sockets, signals (ABI 6)
_RULE_PATH_BENEATH = 1
_CREATE_RULESET_VERSION = 1
_PR_SET_NO_NEW_PRIVS, _PR_CAPBSET_DROP = 38, 24
_CLONE_NEWNET, _CLONE_NEWIPC, _CLONE_NEWUSER = 0x40000000, 0x08000000, 0x10000000

# Files and trees any CPython process with numpy/scipy/sklearn/boosters needs to read.
_SYSTEM_READ = (
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/local/lib",
    "/usr/share/zoneinfo",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup/cpu.max",  # CPU quotas (cgroup v2, then v1) that joblib and OpenMP read for their core count
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
    "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us",
    "/dev/urandom",
)
_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1")


@dataclass(frozen=True)
class SandboxSpec:
    """What one worker may touch.

    Attributes:
        scratch: The private directory it may write (its working directory and ``$HOME``).
        read: Extra trees it may read (its interpreter and libraries are added automatically).
        execute: Interpreters it may start (only the worker that runs the Azure AutoML runtime has one).
    """

    scratch: Path
    read: tuple[str, ...] = ()
    execute: tuple[str, ...] = ()

    @property
    def may_spawn(self) -> bool:
        """True when the worker starts a child process (the Azure AutoML runtime)."""
        return bool(self.execute)


@dataclass
class SandboxReport:
    """Which layers hold in this process, as plain data for the model card.

    Attributes:
        landlock: The Landlock ABI enforced, or 0.
        seccomp: True when the system-call filter is installed on every thread.
        namespaces: Namespaces the process was moved into (``net``, ``ipc``, ``user``).
        capabilities_dropped: True when every capability was dropped.
        verified: Forbidden actions the self-test tried and saw fail.
        problems: Why a layer is missing or the self-test failed (empty when all is well).
    """

    landlock: int = 0
    seccomp: bool = False
    namespaces: list[str] = field(default_factory=list)
    capabilities_dropped: bool = False
    verified: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """True when the file system and system-call layers hold and the self-test passed."""
        return self.landlock > 0 and self.seccomp and not self.problems

    def as_dict(self) -> dict[str, object]:
        """Plain data for the wire (and the model card)."""
        out: dict[str, object] = asdict(self)
        out["active"] = self.active
        return out


def _call(name: str, *args: object) -> int:
    result = _syscall(ctypes.c_long(_NR[name]), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return int(result)


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


# -- layer 1: early, single-threaded ------------------------------------------------------------------------
def enter_early(report: SandboxReport) -> None:
    """New network and IPC namespaces (and a user namespace when not root), where the kernel allows it.

    Call first thing in the worker, while it is single-threaded (a user namespace needs that). The worker
    never outlives its parent through :func:`watch_parent`, not the parent-death signal, which fires when
    the *thread* that started the worker ends (a Streamlit script thread ends after every rerun).
    """
    if threading.active_count() > 1:
        return
    uid, gid = os.geteuid(), os.getegid()
    try:
        if uid == 0:
            _call("unshare", ctypes.c_ulong(_CLONE_NEWNET | _CLONE_NEWIPC))
            report.namespaces = ["net", "ipc"]
            return
        _call("unshare", ctypes.c_ulong(_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWIPC))
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
        report.namespaces = ["user", "net", "ipc"]
    except OSError as exc:
        log.info("no namespaces for the worker (%s); Landlock and seccomp still apply", exc)


# -- layer 2: Landlock ------------------------------------------------------------------------------------
class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is missing or disabled."""
    try:
        return _call("landlock_create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:
        return 0


def _fs_rights(abi: int) -> int:
    rights = _FS_ALL_ABI1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def _add_rule(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this machine does not have
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS
        rule = _PathBeneath(access, fd)
        _call("landlock_add_rule", ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), 0)
    finally:
        os.close(fd)


def _python_trees() -> list[str]:
    """The interpreter's own trees: prefixes, stdlib, site-packages (never the project checkout itself)."""
    trees = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(CORE_DIR)}
    for entry in sys.path:
        if entry and ("site-packages" in entry or "dist-packages" in entry):
            trees.add(entry)
    return sorted(t for t in trees if t and os.path.exists(t))


def _landlock(spec: SandboxSpec, report: SandboxReport) -> None:
    abi = landlock_abi()
    if abi <= 0:
        report.problems.append("Landlock is not available in this kernel (Linux 5.13+ with Landlock enabled)")
        return
    handled = _fs_rights(abi)
    attr = _RulesetAttr(handled, _NET_ALL if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = _call("landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), 0)
    try:
        read = _FS_READ_FILE | _FS_READ_DIR
        for tree in (*_python_trees(), *_SYSTEM_READ, f"/proc/{os.getpid()}", *spec.read):
            _add_rule(ruleset, tree, read)
        _add_rule(ruleset, "/dev/null", _FS_READ_FILE | _FS_WRITE_FILE)
        _add_rule(ruleset, str(spec.scratch), handled & ~_FS_EXECUTE)
        for program in spec.execute:
            for path in {program, os.path.realpath(program), *(os.path.realpath(p) for p in _LOADERS)}:
                _add_rule(ruleset, path, _FS_READ_FILE | _FS_EXECUTE)
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        _call("landlock_restrict_self", ctypes.c_int(ruleset), 0)
        report.landlock = abi
    finally:
        os.close(ruleset)


# -- layer 2: seccomp -------------------------------------------------------------------------------------
def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000


def _seccomp_program(pid: int, may_spawn: bool) -> bytes:
    """A BPF filter: deny the listed calls with EPERM, clone3 with ENOSYS (glibc then uses clone)."""
    deny = dict(_DENIED_SYSCALLS)
    if not may_spawn:
        deny.update(_SPAWN_SYSCALLS)
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),  # arch
        _insn(_JEQ, 1, 0, _AUDIT_ARCH_X86_64),
        _insn(_RET, 0, 0, _KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, 0),  # syscall number
        _insn(_JGE, 0, 1, _X32_BIT),
        _insn(_RET, 0, 0, _KILL_PROCESS),
        _insn(_JEQ, 0, 1, _CLONE3),
        _insn(_RET, 0, 0, _ERRNO | errno.ENOSYS),
    ]
    for nr in sorted(set(deny.values())):
        prog += [_insn(_JEQ, 0, 1, nr), _insn(_RET, 0, 0, _ERRNO | errno.EPERM)]
    if not may_spawn:  # clone: threads only
        prog += [
            _insn(_JEQ, 0, 4, _CLONE),
            _insn(_LD_W_ABS, 0, 0, 16),  # args[0], low word: the flags
            _insn(_JSET, 1, 0, _CLONE_THREAD),
            _insn(_RET, 0, 0, _ERRNO | errno.EPERM),
            _insn(_RET, 0, 0, _ALLOW),
        ]
    if may_spawn:  # it must stop its child; Landlock's signal scope (ABI 6) keeps it from others
        return b"".join([*prog, _insn(_RET, 0, 0, _ALLOW)])
    prog += [  # kill(pid | 0) and tgkill(pid, ...) of itself only
        _insn(_JEQ, 0, 5, _KILL),
        _insn(_LD_W_ABS, 0, 0, 16),
        _insn(_JEQ, 2, 0, pid),
        _insn(_JEQ, 1, 0, 0),
        _insn(_RET, 0, 0, _ERRNO | errno.EPERM),
        _insn(_RET, 0, 0, _ALLOW),
        _insn(_JEQ, 0, 4, _TGKILL),
        _insn(_LD_W_ABS, 0, 0, 16),
        _insn(_JEQ, 1, 0, pid),
        _insn(_RET, 0, 0, _ERRNO | errno.EPERM),
        _insn(_RET, 0, 0, _ALLOW),
        _insn(_RET, 0, 0, _ALLOW),
    ]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp(spec: SandboxSpec, report: SandboxReport) -> None:
    if platform.machine() != "x86_64":
        report.problems.append(f"the system-call filter supports x86-64 only, not {platform.machine()}")
        return
    code = _seccomp_program(os.getpid(), spec.may_spawn)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _call("seccomp", ctypes.c_uint(1), ctypes.c_uint(1), ctypes.byref(prog))  # SET_MODE_FILTER, TSYNC
    report.seccomp = True


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(report: SandboxReport) -> None:
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            break
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    try:
        _call("capset", ctypes.byref(header), ctypes.byref(data))
        report.capabilities_dropped = True
    except OSError as exc:  # pragma: no cover - dropping capabilities is always allowed
        report.problems.append(f"capabilities: {exc}")


# -- layer 3: the self-test -------------------------------------------------------------------------------
def _expect_denied(label: str, attempt: Callable[[], object], report: SandboxReport) -> None:
    try:
        attempt()
    except PermissionError:
        report.verified.append(label)
        return
    except OSError as exc:
        report.problems.append(f"self-test: {label} failed with {exc!r}, not with a refusal")
        return
    report.problems.append(f"self-test: {label} was allowed")


def _try_write_outside(spec: SandboxSpec) -> None:
    target = spec.scratch.parent / f".modellens-sandbox-probe-{os.getpid()}"
    with open(target, "w") as handle:
        handle.write("x")
    os.unlink(target)


def _try_fork() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - only reached when the sandbox failed
        os._exit(0)
    os.waitpid(pid, 0)


def _try_exec() -> None:
    os.execv("/nonexistent/modellens-sandbox-probe", ["probe"])  # noqa: S606 - a path that does not exist


def _self_test(spec: SandboxSpec, report: SandboxReport) -> None:
    _expect_denied("write outside scratch", lambda: _try_write_outside(spec), report)
    _expect_denied("read the parent's environment", lambda: open(f"/proc/{os.getppid()}/environ", "rb").close(), report)
    _expect_denied("list the root directory", lambda: os.listdir("/"), report)
    _expect_denied("open a socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(), report)
    if not spec.may_spawn:
        _expect_denied("start a process", _try_fork, report)
        _expect_denied("execute a program", _try_exec, report)
    probe = spec.scratch / ".probe"
    probe.write_text("ok")
    probe.unlink()


def confine(spec: SandboxSpec, report: SandboxReport | None = None) -> SandboxReport:
    """Apply Landlock, seccomp and capability dropping to this process, then test them.

    Call after the worker imported its libraries and before it reads the first request. Never raises:
    what could not be set up is in the report's ``problems`` (the server then refuses uploads).
    """
    report = report or SandboxReport()
    spec.scratch.mkdir(parents=True, exist_ok=True)
    os.chdir(spec.scratch)
    for step in (_landlock, _seccomp):
        try:
            step(spec, report)
        except OSError as exc:
            report.problems.append(f"{step.__name__.strip('_')}: {exc}")
    _drop_capabilities(report)
    if report.landlock and report.seccomp:
        _self_test(spec, report)
    return report


def watch_parent(interval: float = 0.5) -> None:
    """End this process as soon as its parent is gone (a daemon thread polling the parent's pid)."""
    parent = os.getppid()

    def loop() -> None:
        while True:
            threading.Event().wait(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=loop, daemon=True, name="parent-watchdog").start()


def spec_from_env(env: dict[str, str] | None = None) -> SandboxSpec | None:
    """The worker's sandbox from ``MODELLENS_SANDBOX_*`` (set by :mod:`core.isolation.workers`), or None when absent."""
    env = dict(os.environ if env is None else env)
    scratch = env.get("MODELLENS_SANDBOX_SCRATCH")
    if not scratch:
        return None
    split: Callable[[str], tuple[str, ...]] = lambda name: tuple(p for p in env.get(name, "").split(os.pathsep) if p)  # noqa: E731
    return SandboxSpec(Path(scratch), read=split("MODELLENS_SANDBOX_READ"), execute=split("MODELLENS_SANDBOX_EXEC"))


def spec_env(scratch: Path, *, read: Sequence[str] = (), execute: Sequence[str] = ()) -> dict[str, str]:
    """The environment variables that carry a :class:`SandboxSpec` to a worker."""
    return {
        "MODELLENS_SANDBOX_SCRATCH": str(scratch),
        "MODELLENS_SANDBOX_READ": os.pathsep.join(read),
        "MODELLENS_SANDBOX_EXEC": os.pathsep.join(execute),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
    }
