"""Validation material with known ground truth: constructed palsy and synkinesis from healthy clips."""
