"""Difference Ensemble Method (paper section 3): OVPM + DVPM behind the ``dem`` AU estimator.

Importing this package registers the estimator; training, evaluation and benchmark code live in
submodules that are imported only by the commands that need them.
"""

from stream.au.dem.estimator import DemEstimator, build_dem  # noqa: F401  (registers "dem")
from stream.au.dem.provenance import constant_output_warning  # noqa: F401
