"""Real child processes without the seconds of imports each: a Python that imported the
heavy third-party packages once (torch, optuna, scikit-learn, ...; no ecotune module)
forks a child per program.

``python -m ecotune run`` costs 9-11 CPU-s, most of it ``import torch`` and friends
(benchmarks/README.md). A child forked from this server is a real process all the same:
a pid of its own that signals reach, its own exit status, its stdin/stdout/stderr on the
descriptors the test gave it, every ecotune module imported afresh (``runpy``, as ``-m``
does), workers it spawns are its children, and it ends through the interpreter's own
shutdown (atexit handlers, non-daemon threads). What it does not repeat is the
interpreter's start: tests about that start (``python -m ecotune --help``, what
``import ecotune`` loads) run ``sys.executable`` itself.

Environment variables the preloaded packages read when imported keep the server's values
(the child's environment is the test's from the fork on); a program that sets one before
its imports (``HF_HUB_OFFLINE`` before ``import transformers``) must not have that package
preloaded, so only the packages in ``PRELOAD`` are.

    process = start([sys.executable, "-m", "ecotune", "run", ...], cwd=..., env=...)
    process.pid, process.poll(), process.send_signal(...), process.communicate(timeout=...)

One server per pytest process, started on first use and stopped at its exit.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: Imported once by the server: what every ``ecotune run`` imports, the slow part of it.
PRELOAD = ("numpy", "scipy.stats", "pandas", "sqlalchemy", "alembic", "pydantic", "optuna",
           "plotly", "torch", "torch._dynamo", "torchvision", "sklearn.datasets",
           "sklearn.model_selection", "rich")

SERVER = r"""
import gc, json, os, runpy, select, signal, socket, sys
path, parent = sys.argv[1], int(sys.argv[2])
for name in sys.argv[3:]:
    __import__(name)
assert not [m for m in sys.modules if m == "ecotune" or m.startswith("ecotune.")]
# The preloaded objects out of the collector's sight (CPython's advice for forking
# servers): a child's collections, the last one at its shutdown among them, would
# otherwise walk them all and so write to every page of them, copying each one. A child
# did nothing in 2.1 CPU-s so, in 0.5 s without (it still collects what it makes).
gc.collect()
gc.freeze()
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.signal(signal.SIGCHLD, lambda *_: None)
signal.set_wakeup_fd(wake_w)
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(64)
print("ready", flush=True)
children = {}  # pid -> the connection that started it
request = None
while request is None:
    readable, _, _ = select.select([listener, wake_r], [], [], 1.0)
    if os.getppid() != parent:  # the pytest process is gone
        os._exit(0)
    if wake_r in readable:
        os.read(wake_r, 4096)
    while children:
        pid, status, usage = os.wait4(-1, os.WNOHANG)
        if pid == 0:
            break
        conn = children.pop(pid)
        try:
            conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status),
                                     "cpu_s": usage.ru_utime + usage.ru_stime}).encode()
                         + b"\n")
        except OSError:  # the test stopped listening (it failed): the others still are
            pass
        conn.close()
    if listener in readable:
        conn, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        pid = os.fork()
        if pid == 0:
            request = json.loads(message)
            for fd_to, fd_from in enumerate(fds):
                os.dup2(fd_from, fd_to)
            for fd in fds:
                os.close(fd)
            # The child says its pid itself: a signal sent before Python's handlers are
            # set up again after the fork would be lost.
            conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
            for other in [listener, conn, *children.values()]:
                other.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(wake_r)
            os.close(wake_w)
            break
        for fd in fds:
            os.close(fd)
        children[pid] = conn
del children, listener, conn, fds, message, readable
# The child: the program, as `python -m NAME ARGS` or `python -c CODE ARGS` runs it.
os.chdir(request["cwd"])
os.environ.clear()
os.environ.update(request["env"])
args = request["args"]
if args[0] == "-m":
    sys.argv = [args[1], *args[2:]]
    sys.path[0] = os.getcwd()
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:
    assert args[0] == "-c", args
    sys.argv = ["-c", *args[2:]]
    exec(compile(args[1], "<string>", "exec"),
         {"__name__": "__main__", "__builtins__": __builtins__})
"""

_server: dict = {}
_lock = threading.Lock()
#: CPU seconds of the ended children (user + system, their waited-for children included):
#: they are the server's children, not this process's.
children_cpu_s = 0.0


def _server_path() -> str:
    with _lock:
        if "path" not in _server:
            folder = tempfile.mkdtemp(prefix="ecotune-forkserver-")
            path = os.path.join(folder, "socket")
            process = subprocess.Popen(
                [sys.executable, "-c", SERVER, path, str(os.getpid()), *PRELOAD],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=open(os.path.join(folder, "server.log"), "w"), text=True,
                preexec_fn=_default_sigint)
            line = process.stdout.readline()
            if line != "ready\n":
                raise RuntimeError("the fork server did not start: "
                                   + Path(folder, "server.log").read_text()[-2000:])
            _server.update(path=path, process=process)
            atexit.register(_stop, process, folder)
        return _server["path"]


def _default_sigint() -> None:
    """The server's ``preexec_fn``: a suite started with SIGINT ignored (in the background:
    ``cmd &``, ``nohup``) passes the ignoring on, and a Python started so installs no
    KeyboardInterrupt handler; the server's children, for tests that send Ctrl-C, need it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(process: subprocess.Popen, folder: str) -> None:
    process.kill()
    process.wait()
    shutil.rmtree(folder, ignore_errors=True)  # its socket and log: nothing left in /tmp


def _fd(spec, default_mode: str) -> tuple[int, object]:
    """(descriptor for the child, our end or None) for a Popen-style stdin/stdout/stderr."""
    if spec is subprocess.PIPE:
        read_end, write_end = os.pipe()
        return (read_end, write_end) if default_mode == "r" else (write_end, read_end)
    if spec is None:
        return os.dup(0 if default_mode == "r" else 1), None
    if spec is subprocess.DEVNULL:
        return os.open(os.devnull, os.O_RDWR), None
    return os.dup(spec if isinstance(spec, int) else spec.fileno()), None


class ForkedProcess:
    """The part of ``subprocess.Popen``'s interface the tests use, for a forked child."""

    def __init__(self, args: list[str], cwd=None, env=None, stdin=subprocess.DEVNULL,
                 stdout=None, stderr=None, text: bool = False) -> None:
        if args[0] != sys.executable or args[1] not in ("-m", "-c"):
            raise ValueError(f"not a `python -m` or `python -c` command line: {args}")
        self.args = args
        self.returncode: int | None = None
        self.cpu_s = 0.0
        child_in, our_in = _fd(stdin, "r")
        child_out, our_out = _fd(stdout, "w")
        if stderr is subprocess.STDOUT:
            child_err, our_err = os.dup(child_out), None
        else:
            child_err, our_err = _fd(stderr, "w")
        request = {"args": args[1:], "cwd": str(cwd or os.getcwd()),
                   "env": dict(os.environ if env is None else env)}
        self._conn = socket.socket(socket.AF_UNIX)
        try:
            self._conn.connect(_server_path())
            socket.send_fds(self._conn, [json.dumps(request).encode()],
                            [child_in, child_out, child_err])
        finally:
            for fd in (child_in, child_out, child_err):
                os.close(fd)
        self._buffer = b""
        self.pid = self._reply(None)["pid"]
        mode = "" if text else "b"
        self.stdin = os.fdopen(our_in, "w" + mode) if our_in is not None else None
        self.stdout = os.fdopen(our_out, "r" + mode) if our_out is not None else None
        self.stderr = os.fdopen(our_err, "r" + mode) if our_err is not None else None

    def _reply(self, timeout: float | None) -> dict | None:
        """The server's next line for this child, or None if none came within timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._conn], [], [], left)
            if not ready:
                return None
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError("the fork server ended before its child")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _ended(self, timeout: float | None) -> bool:
        if self.returncode is not None:
            return True
        reply = self._reply(timeout)
        if reply is None:
            return False
        global children_cpu_s
        self.returncode, self.cpu_s = reply["returncode"], reply["cpu_s"]
        children_cpu_s += self.cpu_s
        self._conn.close()
        return True

    def poll(self) -> int | None:
        self._ended(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, input=None, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.stdin is not None:
            if input:
                self.stdin.write(input)
            self.stdin.close()
        results: dict[str, object] = {}
        readers = [threading.Thread(target=lambda n=n, f=f: results.__setitem__(n, f.read()),
                                    daemon=True)
                   for n, f in (("out", self.stdout), ("err", self.stderr)) if f is not None]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for f in (self.stdout, self.stderr):
            if f is not None:
                f.close()
        return results.get("out"), results.get("err")

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(args: list[str], **popen_args) -> ForkedProcess:
    """``subprocess.Popen(args, ...)`` for ``[sys.executable, "-m"|"-c", ...]``, forked."""
    return ForkedProcess(args, **popen_args)


def run(args: list[str], input=None, timeout: float | None = None, **popen_args
        ) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, ...)``, forked."""
    process = ForkedProcess(args, stdin=subprocess.PIPE if input is not None else
                            subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen_args)
    try:
        out, err = process.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(args, process.returncode, out, err)
