"""Face detection (box + 5 points) and alignment into half-faces."""
