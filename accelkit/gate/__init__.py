"""Performance gates for CI: decide from benchmark reports whether a build got slower.

* :mod:`accelkit.gate.compare`: a baseline ``results.json`` against a current one, row by
  row (``accelkit compare``): :func:`~accelkit.gate.compare.compare_reports`,
  :func:`~accelkit.gate.compare.compare_files`.
* :mod:`accelkit.gate.ratio_gate`: an in-run ratio (ORT fp32 / torch fp32 images/sec)
  against a committed baseline, for noisy shared machines: :func:`~accelkit.gate.ratio_gate.ratio_gate`.
* :mod:`accelkit.gate.stats`: the bootstrap interval of a ratio of medians both gates decide on.

Importing this package imports none of its modules; import the one you need.
"""
