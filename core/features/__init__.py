"""Per-customer financial features: the registry of what rules may read, and the fold that computes them."""
