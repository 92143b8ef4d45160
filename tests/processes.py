"""Child processes the tests start: on a free loopback port, stoppable with Ctrl-C, and
always reaped.

A shell that starts a job in the background (``make test &``) starts it with SIGINT
ignored, and children inherit that; an app the test stops with SIGINT would then never
stop. So every child starts with SIGINT at its default, whatever the runner inherited, and
whatever a test does, the process it started is killed and waited for before it returns.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:``port``; fail with the process's output
    if it exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"{process.args!r} did not listen on {port}: "
                                     f"{output}") from None
            time.sleep(0.1)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(arguments: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` with SIGINT reset to its default in the child."""
    return subprocess.Popen(list(arguments), preexec_fn=_default_sigint, **popen)


def reap(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Kill ``process`` if it still runs, and wait for it (never leaves a zombie)."""
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # only an unkillable process
        process.wait(timeout=timeout)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGINT,
         timeout: float = 30.0) -> tuple[Any, Any]:
    """Send ``sig`` and collect the output. A process that has not ended after ``timeout``
    seconds is killed, and the test fails saying so."""
    process.send_signal(sig)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        reap(process)
        raise AssertionError(f"{process.args!r} did not stop within {timeout} s of "
                             f"signal {sig}; killed") from None


@contextlib.contextmanager
def running(arguments: Sequence[str], **popen: Any) -> Iterator[subprocess.Popen[Any]]:
    """A spawned process that is reaped when the block ends, however it ends."""
    process = spawn(arguments, **popen)
    try:
        yield process
    finally:
        reap(process)
