"""compare.py with the faulty implementation registered: the reliability tests' entry point."""

import sys

import compare
import tests.faulty  # noqa: F401  (registers "faulty")

if __name__ == "__main__":
    try:
        sys.exit(compare.main())
    except KeyboardInterrupt:
        sys.exit(130)
