"""The search behind ``accelkit optimize`` (search space, journal, quality-gated search).

Use it through :func:`accelkit.optimize` / :func:`accelkit.pipelines.optimize.optimize`;
this package holds the machinery and imports nothing heavy.
"""
