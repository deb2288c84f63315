"""Run ``lale-geo`` with a signal sent to itself after a given number of tiles: an interrupt at a point
the test controls, never raced against a clock.

    python -m tests.faults.interrupt_at SIGNAL TILES lale-geo-args...
"""

from __future__ import annotations

import os
import signal
import sys

import lale_geo.cli.predict as predict_command
from lale_geo.cli.main import cli


def main() -> None:
    sig, tiles, args = getattr(signal, sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python
    # then keeps it ignored: give it Python's own Ctrl-C handler, as in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    advance = predict_command.BarProgress.advance
    done = [0]

    def advance_then_signal(self, n: int) -> None:
        advance(self, n)
        done[0] += n
        if done[0] >= tiles:
            os.kill(os.getpid(), sig)

    predict_command.BarProgress.advance = advance_then_signal
    cli(args)


if __name__ == "__main__":
    main()
