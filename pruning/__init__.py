"""Head, row (FFN) and weight pruning of speech SSL models, driven by `accelerate` (planned)."""
