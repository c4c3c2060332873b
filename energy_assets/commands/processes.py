"""The processes `energy up` starts, and how they end: together, whatever ends `energy up`.

The webserver and the daemon run in one process group of their own, and everything they start
(code servers, run workers, dbt, compute-log `tail`s) stays in it. Each is told by the kernel
when `energy up` dies (PR_SET_PDEATHSIG), and a reaper, started beside them, watches a pipe
from `energy up`: at its end of file (an exit, a crash or kill -9 alike) it stops the whole
group, SIGTERM then SIGKILL, before it leaves. While it works it is a user of the embedded
server, so the runs it stops can still record how they ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from energy_assets.settings import REPO_ROOT, PlatformError

STOP_GRACE_SECONDS = 20.0
"""How long a stopped group's processes may take to finish before they are killed."""
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def child_setup() -> None:
    """In a child before exec: default signal handling (children of a non-interactive shell
    inherit SIGINT/SIGTERM as ignored) and SIGTERM when the parent dies."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def group_members(pgid: int) -> list:
    """The live (not zombie) processes of process group `pgid`."""
    import psutil

    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def stop_group(pgid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process of the group, SIGKILL those still there after `grace`."""
    import psutil

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        members = group_members(pgid)
        if not members:
            return
        for member in members:
            with contextlib.suppress(psutil.Error):
                member.send_signal(sig)
        psutil.wait_procs(members, timeout=wait)
        deadline = time.monotonic() + wait
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)  # members that are not our children: wait_procs cannot reap them


class ProcessGroup:
    """Processes started in one new process group, stopped together."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.procs: list[subprocess.Popen] = []

    @property
    def pgid(self) -> int:
        return self.procs[0].pid

    def start(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `args` in the group (with the group's environment unless `env` is given), its
        output (and its children's) appended to the log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=self.env if env is None else env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=child_setup,
                process_group=self.pgid if self.procs else 0,
            )
        self.procs.append(proc)
        return proc

    def exited(self) -> subprocess.Popen | None:
        return next((p for p in self.procs if p.poll() is not None), None)

    def stop(self) -> None:
        """The daemon and webserver first (no new run starts), then what is left of the group."""
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        if self.procs:
            stop_group(self.pgid, max(1.0, deadline - time.monotonic()))
        for proc in self.procs:
            proc.wait()


@contextlib.contextmanager
def reaped(group: ProcessGroup, user_locks: tuple[Path, ...] = ()) -> Iterator[None]:
    """A reaper for `group` for the life of the block (and past it, should this process die)."""
    read, write = os.pipe()
    reaper = subprocess.Popen(
        [sys.executable, "-m", __name__, "reap", str(read), str(group.pgid), *map(str, user_locks)],
        pass_fds=(read,),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(read)
    try:
        yield
    finally:
        os.close(write)
        reaper.wait()


def reap(fd: int, pgid: int, user_locks: list[str]) -> None:
    """The reaper: wait for the end of file on `fd`, then stop process group `pgid`."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    for path in user_locks:
        lock = os.open(path, os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_SH)  # the server stays up while the group stops
    while os.read(fd, 4096):
        pass
    stop_group(pgid)


@contextlib.contextmanager
def single_instance(lock: Path, what: str) -> Iterator[None]:
    """Refuse to run `what` twice on one home: a lock held for the life of the block, with
    the holder's pid in the file for the message."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode().strip() or "?"
        os.close(fd)
        raise PlatformError(
            f"{what} already runs on this home (pid {holder}); stop it first"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def stop_children(before: set[int]) -> None:
    """Stop what this process started since `before` and left running (compute-log `tail`s,
    step processes): SIGTERM, then SIGKILL after a grace period."""
    import psutil

    started = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    for child in started:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(started, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def stop_if_interrupted(instance, run_id: str) -> None:
    """Raise KeyboardInterrupt when a stop signal interrupted the run `run_id`.

    A run executed in this process records the interruption as its failure and returns, so
    the command would go on to its next run; this makes it stop there instead.
    """
    run = instance.get_run_by_id(run_id)
    if run is not None and run.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION":
        raise KeyboardInterrupt


def on_stop_signals(handler) -> None:
    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)


if __name__ == "__main__" and sys.argv[1] == "reap":
    reap(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
