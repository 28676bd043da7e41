"""JAX's float64 switch, in one place: every module that runs JAX imports this before jax.

JAX computes in float32 unless x64 is enabled before it is imported (its documented way is the
JAX_ENABLE_X64 variable). float32 runs are unaffected: every array here is made with an
explicit dtype. Where jax was imported before this module (a test session), the same switch
is made by jax.config, which holds as long as no array has been made yet.
"""

import os
import sys

os.environ.setdefault("JAX_ENABLE_X64", "true")
if "jax" in sys.modules:
    sys.modules["jax"].config.update("jax_enable_x64", True)
