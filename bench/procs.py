"""Processes and /proc: starting every server in its own process group,
stopping them all on the way out, and reading CPU time, RSS, descriptors and
listening sockets of a process tree."""

import os
import resource
import signal
import socket
import subprocess
import time

import common
from common import CLK_TCK, WANTED_NOFILE, BenchError


class Proc:
    """Proc is one process started by the bench, in its own session and
    process group, so that stop() ends it and every child it forked."""

    started = []  # every Proc ever started, for the exit cleanup

    def __init__(self, name, argv, cpu, log_path, stdin=None, stdout=None):
        self.name = name
        self.log_path = log_path
        nofile = common.NOFILE
        wrapped = ["taskset", "-c", cpu, "prlimit", f"--nofile={nofile}:{nofile}", "--"] + argv
        self.log_file = open(log_path, "ab")
        self.popen = subprocess.Popen(
            wrapped, stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else self.log_file,
            stderr=self.log_file, start_new_session=True)
        self.pid = self.popen.pid  # taskset and prlimit exec: this is the server
        Proc.started.append(self)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=5.0):
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a forked worker still draining).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log_file.close()

    def log_tail(self, lines=5):
        try:
            with open(self.log_path, errors="replace") as f:
                return " | ".join(line.strip() for line in f.readlines()[-lines:])
        except OSError:
            return ""


def become_subreaper():
    """Makes this process the reaper of every orphan below it, so that a
    worker whose master died first comes back here instead of to init."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def own_children():
    me = os.getpid()
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        kids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def cleanup():
    for proc in reversed(Proc.started):
        proc.stop(timeout=2.0)
    Proc.started.clear()
    # Orphans reparented here (see become_subreaper): end and reap them.
    for _ in range(50):
        kids = own_children()
        if not kids:
            break
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        time.sleep(0.05)


def on_signal(signum, frame):
    # SystemExit unwinds through the finally blocks and then atexit.
    raise SystemExit(128 + signum)


def run(argv, check=True, capture=True, timeout=None, cpu=None, **kw):
    if cpu is not None:
        argv = ["taskset", "-c", cpu] + argv
    res = subprocess.run(argv, stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, text=True,
                         timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {res.returncode}: "
                         f"{(res.stderr or '').strip()[-500:]}")
    return res


# ---- /proc --------------------------------------------------------------------

def tree_pids(root):
    """tree_pids returns root and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def tree_cpu_seconds(root):
    """utime + stime of root and its descendants, all threads included."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def tree_rss_bytes(root):
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def tree_num_fds(root):
    total = 0
    for pid in tree_pids(root):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def cpu_busy_seconds(cpu):
    """Busy time of one CPU (everything but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return 0.0


def listening(port):
    """Whether something listens on 127.0.0.1:port, read from /proc/net/tcp
    (no connection made, so no proxy logs a failed handshake)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(l.split()[1] == want and l.split()[3] == "0A" for l in f.readlines()[1:])
    except OSError:
        return False


def non_loopback_listeners(pids):
    """Listening sockets of pids whose address is not a loopback one."""
    inodes = set()
    for pid in pids:
        for p in tree_pids(pid):
            try:
                for fd in os.listdir(f"/proc/{p}/fd"):
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except OSError:
                pass
    # Addresses are hex in host byte order, 32 bits at a time: 127.x.y.z
    # ends in 7F; ::1 and ::ffff:127.x.y.z as below.
    def loopback(host):
        if len(host) == 8:
            return host.endswith("7F")
        return (host == "00000000000000000000000001000000" or
                (host.startswith("0000000000000000FFFF0000") and host.endswith("7F")))
    bad = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            addr, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and inode in inodes and not loopback(addr.split(":")[0]):
                bad.append(f"{path} {addr}")
    return bad


def nofile_limit():
    """The RLIMIT_NOFILE every process gets: WANTED_NOFILE if prlimit may set
    it (root with CAP_SYS_RESOURCE), else the current hard limit."""
    res = subprocess.run(["prlimit", f"--nofile={WANTED_NOFILE}:{WANTED_NOFILE}", "--", "true"],
                         capture_output=True)
    if res.returncode == 0:
        return WANTED_NOFILE
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, deadline_s=15.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not proc.alive():
            return False
        if listening(port):
            return True
        time.sleep(0.05)
    return False
