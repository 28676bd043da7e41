"""compare.py with the faulty implementation registered: the reliability tests' entry point."""

import sys

import compare
from implementations import REGISTRY, Implementation
from tests.faulty import FRAMEWORK, VARIANTS

REGISTRY[FRAMEWORK] = Implementation(FRAMEWORK, "tests.faulty", VARIANTS, (), None)

if __name__ == "__main__":
    try:
        sys.exit(compare.main())
    except KeyboardInterrupt:
        sys.exit(130)
