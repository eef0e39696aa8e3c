"""Performance gates for CI: decide from benchmark reports whether a build got slower.

One module per concern:

* :mod:`accelkit.gate.classify`: the one regression rule (:func:`~accelkit.gate.classify.classify`),
  what unequal conditions make of a verdict, the row verdicts and the exit codes
  (0 pass, 1 regression, 3 the gate cannot tell).
* :mod:`accelkit.gate.matching`: which row of one report is which row of the other.
* :mod:`accelkit.gate.reliability`: whether two runs can be compared (same generator,
  environment, CPU contention).
* :mod:`accelkit.gate.compare`: a baseline ``results.json`` against a current one, row by
  row (``accelkit compare``): :func:`~accelkit.gate.compare.compare_reports`,
  :func:`~accelkit.gate.compare.compare_files`.
* :mod:`accelkit.gate.ratio_gate`: an in-run ratio (ORT fp32 / torch fp32 images/sec)
  against a committed baseline, for noisy shared machines: :func:`~accelkit.gate.ratio_gate.ratio_gate`.
* :mod:`accelkit.gate.render`: text, Markdown, JUnit XML and JSON of the verdicts.
* :mod:`accelkit.gate.stats`: the bootstrap interval of a ratio of medians both gates decide on.
* :mod:`accelkit.gate.interleave`: two builds measured round by round in one process (``bench --vs``).

Importing this package imports none of its modules; import the one you need.
How the gates decide and what they can promise: ``docs/perf-regression.md``.
"""
