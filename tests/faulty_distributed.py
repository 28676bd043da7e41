"""Deliberately failing data-parallel workers, for the reliability tests only.

Launched as compare.py launches a distributed engine (torchrun, or one process per TF_CONFIG
entry). Every worker writes its pid to $FAULTY_PID_DIR, so a test can prove none survives.
- die:  worker 1 exits with an error while worker 0 waits for it, as in a collective, for ever.
- hang: every worker waits for ever (the run's --timeout must end it).
"""

import json
import os
import sys
import time

from implementations import Implementation, register

FAULTY_DP = register(Implementation(
    name="faulty-dp", module="tests.faulty_distributed", variants=("die", "hang"), requires=(), extra=None,
    kernels="numpy"))


def rank() -> int:
    if "RANK" in os.environ:  # torchrun
        return int(os.environ["RANK"])
    return json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0)


def build(cfg, problem, variant):
    with open(os.path.join(os.environ["FAULTY_PID_DIR"], f"{os.getpid()}.pid"), "w") as f:
        f.write(str(os.getpid()))
    if variant == "die" and rank() == 1:
        time.sleep(0.5)
        print("worker 1: deliberate failure", file=sys.stderr)
        sys.exit(3)
    time.sleep(3600)


if __name__ == "__main__":
    from implementations.standalone import main

    main(FAULTY_DP, build)
