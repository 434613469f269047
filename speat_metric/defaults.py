"""Defaults every command and module shares, stated once."""

STUDY_TESTS = ("gender", "age", "native")
"""The study's SpEAT tests, in the order of its tables: the default of ``--tests`` everywhere."""

DTYPES = ("float32", "float16", "bfloat16")
"""The weights and activations ``--dtype`` offers."""
