"""Model cards and Hugging Face Hub publishing of SpEAT results (planned)."""
