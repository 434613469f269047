"""Defaults every command and module shares, stated once."""

STUDY_TESTS = ("gender", "age", "native")
"""The study's SpEAT tests, in the order of its tables: the default of ``--tests`` everywhere."""

DTYPES = ("float32", "float16", "bfloat16")
"""The weights and activations ``--dtype`` offers."""

NUM_PERMUTATIONS = 1_000_000
"""The permutation budget of a SpEAT: every partition when there are fewer."""

BATCH_SECONDS = 60.0
"""Padded audio per batch, in seconds."""

PROFILE = "hf"
"""The extraction profile (``speat_metric.profiles``): transformers' hidden states, soxr resampling."""
