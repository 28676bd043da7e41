"""compare.py with the faulty implementation registered: the reliability tests' entry point."""

import sys

import compare
import tests.faulty  # noqa: F401  (registers "faulty")
from common.launch import exit_status, stop_on_signals

if __name__ == "__main__":
    stop_on_signals()  # as compare.py's own entry point does
    try:
        sys.exit(compare.main())
    except KeyboardInterrupt as interrupt:
        print(f"\n{compare._stopped_by(interrupt)}", file=sys.stderr)
        sys.exit(exit_status(interrupt))
