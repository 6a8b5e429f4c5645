"""Symptoms from per-side AU series (paper, section 4): asymmetry by region, synkinesis pairs.

``statistics`` is pure arithmetic (incremental and batch); ``normal`` loads the normal-subject
co-occurrence matrix that masks the pairs healthy faces move together. ``evidence.assess`` turns the
series into findings that carry their evidence (``regions`` and ``synkinesis`` decide, ``rules`` holds
the thresholds, ``findings`` the result types, ``material`` the warnings about the recording).
"""

from stream.symptoms.normal import load_normal_cooccurrence
from stream.symptoms.statistics import (
    COOCCURRENCE_KEYS,
    DIFFERENCE_KEYS,
    RegionAsymmetry,
    SymptomAccumulator,
    SymptomState,
    SynkinesisPair,
    compute_symptoms,
)

__all__ = [
    "COOCCURRENCE_KEYS",
    "DIFFERENCE_KEYS",
    "RegionAsymmetry",
    "SymptomAccumulator",
    "SymptomState",
    "SynkinesisPair",
    "compute_symptoms",
    "load_normal_cooccurrence",
]
