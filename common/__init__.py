"""The shared harness: config, data, NumPy reference, timing, equivalence, reporting.

Imports NumPy and the standard library only, so that a missing framework never breaks it.
"""
