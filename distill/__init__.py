"""DistilHuBERT-style layer-wise distillation of speech SSL models, driven by `accelerate` (planned)."""
