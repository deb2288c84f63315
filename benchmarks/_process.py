"""Run a child process and measure its wall time and peak resident memory (shared by the benchmarks).

Linux keeps a process's peak resident size across exec, and a forked child starts with its parent's
pages: a command started straight from a benchmark that has loaded torch and a model would read at
least the benchmark's own size. Commands are therefore forked from a small launcher (a bare Python),
which times the command and reports its peak.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # still a zombie: its I/O counters can be read
seconds = time.perf_counter() - start
with open(f"/proc/{pid}/io") as f:
    rchar = dict(line.split(": ") for line in f.read().splitlines())["rchar"]
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{seconds} {usage.ru_maxrss} {rchar}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(args: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB of that process alone, its stdout); raises with its stderr on failure."""
    seconds, rss, _, out = run_counted(args)
    return seconds, rss, out


def run_counted(args: list[str]) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, bytes the process read (``rchar``: files and pipes, imports included), its
    stdout); raises with its stderr on failure.

    Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r") as report:
        code = subprocess.call([sys.executable, "-c", _LAUNCHER, report.name, *map(str, args)],
                               stdout=out, stderr=err, text=True)
        out.seek(0)
        err.seek(0)
        if code:
            raise RuntimeError(f"{' '.join(map(str, args[:4]))} failed:\n{err.read()[-4000:]}")
        seconds, peak_kb, rchar = report.read().split()
        return float(seconds), int(peak_kb) / 1024, int(rchar), out.read()


def run_reading(args: list[str], path: str | Path) -> tuple[float, float, int | None]:
    """(seconds, peak RSS in MB, bytes read from ``path`` alone): the reads are traced with ``strace -P``
    (read/pread64/readv/preadv on that file only, so imports, weights and the run's own temporary files are
    not counted); None without strace."""
    if shutil.which("strace") is None:
        seconds, rss, _, _ = run_counted(args)
        return seconds, rss, None
    with tempfile.NamedTemporaryFile("r") as log:
        seconds, rss, _, _ = run_counted(["strace", "-f", "-qq", "-e", "trace=read,pread64,readv,preadv",
                                          "-e", "signal=none", "-P", str(path), "-o", log.name, *map(str, args)])
        total = 0
        for line in log:
            result = line.rsplit("= ", 1)[-1].split()[0]
            total += int(result) if result.lstrip("-").isdigit() and int(result) > 0 else 0
        return seconds, rss, total
