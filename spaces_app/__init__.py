"""The Gradio Space that browses SpEAT results (planned)."""
