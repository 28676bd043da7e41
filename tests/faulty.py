"""A deliberately faulty implementation, for the reliability tests only.

python -m tests.faulty --variant crash|segfault|killed|hang|nan ...
`hang` starts a helper process first (as frameworks do) and writes its pid to $FAULTY_PID_FILE,
so a test can prove the helper does not outlive the run.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

from common.timing import Trainer
from implementations import Implementation, register

FAULTY = register(Implementation(name="faulty", module="tests.faulty",
                                 variants=("crash", "segfault", "killed", "hang", "nan"), requires=(), extra=None,
                                 kernels="numpy"))


def build(cfg, problem, variant):
    if variant == "crash":
        raise RuntimeError("deliberate crash inside the framework")
    if variant == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    if variant == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    if variant == "hang":
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(os.environ["FAULTY_PID_FILE"], "w") as f:
            f.write(str(helper.pid))
        time.sleep(3600)
    values = iter([1.0, 0.5, float("nan")] + [0.1] * cfg.steps)
    return Trainer(lambda: next(values))


if __name__ == "__main__":
    from implementations.standalone import main

    main(FAULTY, build)
