"""The `evaluate` measurement module; evaluate loads `speat.py` from this folder."""
