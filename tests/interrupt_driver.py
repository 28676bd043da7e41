"""A parent that waits on its children the way compare.py, deploy and Node serving do, for the
Ctrl-C stress test: python -m tests.interrupt_driver child|group|captured TOKEN.

It loads NumPy's BLAS (whose worker threads are what a Ctrl-C can land on), says "waiting",
then waits on sleeping children that carry TOKEN on their command line, so that the test can
find any that outlive it. Exit 130 on KeyboardInterrupt, 1 if the wait ever ended otherwise.
"""

import sys

import numpy as np

from common import launch


def main(mode: str, token: str) -> int:
    np.ones((256, 256)) @ np.ones((256, 256))  # BLAS's threads are up, as in compare.py
    sleeper = [sys.executable, "-c", "import time, sys; time.sleep(600)", token]
    print("waiting", flush=True)
    try:
        if mode == "child":  # compare.py's runs, the sweep's, and --deploy's training run
            launch.run_child(sleeper, None, 600)
        elif mode == "group":  # data-parallel workers
            launch.run_group([sleeper, sleeper], [None, None], 600)
        else:  # --deploy's exporters and Node serving
            launch.run_captured(sleeper, None, 600)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
