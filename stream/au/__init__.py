"""AU intensity estimators (per half-face, 12 AUs, 0..5) behind one interface, chosen by name."""
