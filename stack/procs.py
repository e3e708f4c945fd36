"""Starting, recognising and stopping the stack's own processes.

A PID file records the PID and the exact argv the process was started with. A process counts as ours
only if that PID is alive and runs that argv (for a script, behind its interpreter), so `nudge stack down` never
signals a process that merely reused the PID, nor a broker somebody else started on the same port.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcessRecord",
    "spawn",
    "read_record",
    "is_running",
    "stop",
    "rss_bytes",
    "tail",
    "rotate_log",
    "START_MARKER",
]

# Popen objects of children started by this Python process: kept so they can be reaped (no zombies,
# no ResourceWarning) when the same process stops them, as the pytest fixture does.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

LOG_ROTATE_BYTES = 50 * 1024 * 1024
START_MARKER = "====="  # begins the line spawn() writes into the log before each start


@dataclass(frozen=True)
class ProcessRecord:
    """What a PID file holds: the PID and the argv we started it with."""

    pid: int
    cmdline: tuple[str, ...]
    started_at: float

    def dump(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"pid": self.pid, "cmdline": list(self.cmdline), "started_at": self.started_at})
        )
        tmp.replace(path)


def _proc_cmdline(pid: int) -> tuple[str, ...] | None:
    """The live command line of pid, or None when there is no such (non-zombie) process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The state is the first field after the parenthesised command name, which may itself hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X") or not raw:
        return None
    return tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))


def read_record(path: Path) -> ProcessRecord | None:
    """The PID file's record, or None if there is none or it is unreadable (then it is removed)."""
    try:
        data = json.loads(path.read_text())
        return ProcessRecord(int(data["pid"]), tuple(data["cmdline"]), float(data["started_at"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None


def is_running(record: ProcessRecord) -> bool:
    """True if the recorded PID is alive and still runs the recorded command line.

    The live command line may carry a prefix: for a script the kernel puts its interpreter in front.
    """
    live = _proc_cmdline(record.pid)
    if live is None or not record.cmdline:
        return False
    return live[-len(record.cmdline):] == record.cmdline


def spawn(
    cmd: Sequence[str], *, log_path: Path, pid_path: Path, env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcessRecord:
    """Start cmd detached from our terminal (its own session), output appended to log_path."""
    rotate_log(log_path)
    with log_path.open("ab") as log:
        log.write(f"\n{START_MARKER} {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        child = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    record = ProcessRecord(child.pid, tuple(cmd), time.time())
    # /proc may show an empty or pre-exec command line for a moment after Popen returns: wait it out, so
    # the caller's next is_running() is already true.
    deadline = time.monotonic() + 2.0
    while not is_running(record) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    record.dump(pid_path)
    return record


def _exited(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        del _CHILDREN[pid]
        return True
    return _proc_cmdline(pid) is None


def stop(record: ProcessRecord, *, timeout: float = 30.0) -> bool:
    """SIGTERM (a clean shutdown), then SIGKILL after timeout. False if it was not ours to stop."""
    if not is_running(record):
        return False
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(record.pid):
            return True
        time.sleep(0.1)
    if is_running(record):
        os.kill(record.pid, signal.SIGKILL)
        while not _exited(record.pid):
            time.sleep(0.05)
    return True


def exited_early(record: ProcessRecord) -> bool:
    """True once a process we started has died (used while waiting for it to answer)."""
    return _exited(record.pid) or not is_running(record)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of pid from /proc, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def tail(path: Path, lines: int) -> list[str]:
    """The last lines of a text file (empty list if it does not exist)."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            # Read backwards in blocks until enough newlines are in hand.
            block, data = 64 * 1024, b""
            pos = size
            while pos > 0 and data.count(b"\n") <= lines:
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
    except FileNotFoundError:
        return []
    text = data.decode(errors="replace").splitlines()
    return list(collections.deque(text, maxlen=lines))


def rotate_log(path: Path) -> None:
    """Keep one previous generation once a log passes LOG_ROTATE_BYTES, so logs cannot grow forever."""
    try:
        if path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
