"""Counting the CPU instructions of one stretch of Python code with valgrind's callgrind.

The child process runs the stretch inside a ctypes callback (:func:`measured`): calling a
``CFUNCTYPE`` object made from a Python function enters ``_CallPythonObject`` in CPython's
``_ctypes`` module, a function that nothing on a span path calls. callgrind runs with
``--collect-atstart=no --toggle-collect=_CallPythonObject`` (:func:`count`), so it
counts from that function's entry to its exit and nothing else: interpreter start-up,
imports, warm-up and shutdown stay out. The ctypes call itself adds a constant of about
3,000 instructions to each measurement.

``_CallPythonObject`` is a static function: a Python whose ``_ctypes`` was stripped of
its symbols has no such name, callgrind then counts nothing, and :func:`count` says so.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: The function whose entry and exit switch callgrind's counting on and off.
TOGGLE = "_CallPythonObject"


def measured(body: Callable[[], object]) -> None:
    """Run ``body()`` once, inside the stretch that :func:`count` counts.

    ctypes prints and swallows what a callback raises; it is re-raised here instead.
    """
    errors: list[Exception] = []

    def run() -> None:
        try:
            body()
        except Exception as error:  # carried out of the callback, re-raised below
            errors.append(error)

    ctypes.CFUNCTYPE(None)(run)()
    if errors:
        raise errors[0]


def valgrind() -> str:
    """Path of the valgrind executable; RuntimeError when it is not installed."""
    found = shutil.which("valgrind")
    if found is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    return found


def _total(output: Path) -> int:
    """The instruction total of one callgrind output file (its ``totals:`` line, or
    ``summary:`` for older versions)."""
    summary = None
    for line in output.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:"):
            summary = int(line.split()[1])
    if summary is None:
        raise RuntimeError(f"no totals in callgrind output {output.name}")
    return summary


def count(command: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run ``command`` under callgrind: the instructions executed inside its
    :func:`measured` stretch, and its standard output. The output files go to a
    temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as directory:
        output = Path(directory) / "callgrind.out"
        done = subprocess.run(
            [valgrind(), "--tool=callgrind", "-q", "--collect-atstart=no",
             f"--toggle-collect={TOGGLE}", f"--callgrind-out-file={output}", *command],
            env=None if env is None else dict(env), capture_output=True, text=True,
            check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode} under "
                               f"callgrind:\n{done.stdout}{done.stderr}")
        # One file, unless callgrind was told to dump in parts: their sum is the total.
        total = sum(_total(part) for part in sorted(Path(directory).glob("callgrind.out*")))
    if total == 0:
        raise RuntimeError(f"callgrind counted nothing: no {TOGGLE} symbol in this Python's "
                           "_ctypes (a stripped build?), or the command never called measured()")
    return total, done.stdout
