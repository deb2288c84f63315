"""Run a child process and measure its wall time and peak resident memory (shared by the benchmarks)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time


def run_measured(args: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB of that process alone, its stdout); raises with its stderr on failure.

    Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"{' '.join(map(str, args[:4]))} failed:\n{err.read()[-4000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()
