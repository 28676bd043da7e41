"""The shared harness. No framework is imported here: a missing framework never breaks it.

At module level it imports the standard library and NumPy; SciPy (confidence), Matplotlib
(plots) and threadpoolctl (the BLAS pools) are imported inside the functions that need them.

- the problem and the oracle: config (RunConfig, the CLI), problem (the seeded data and
  weights), data (minibatch order and feeds), reference (the NumPy net), noise and
  equivalence (the rounding noise of correct runs, and the verdict);
- measuring: timing (the clock, Trainer, the harness's own cost, the one median), roofline and
  yardstick (the peak, the floors, each library's kernels), memory, profiling, confidence;
- running: plan (what compare.py's arguments decide, and the runs), comparison (the rounds,
  profiles, the sweep and the report tail), runner (one implementation in its process), launch
  (that process, its threads and every way it ends), hosts (two network namespaces), outdir
  (one comparison per folder), sweep (the size ladder), ring_model (when data parallelism pays);
- reporting: result (RunResult and its JSON), figures (every number per run), report (table,
  CSV, JSON, report.md), plots.
"""
