"""Symptoms from per-side AU series (paper, section 4): asymmetry by region, synkinesis pairs.

``statistics`` is pure arithmetic (incremental and batch); ``normal`` loads the normal-subject
co-occurrence matrix that masks the pairs healthy faces move together.
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
