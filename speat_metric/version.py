"""The version of speat, in a module of its own: the package, the build and every module read it here."""

__version__ = "0.1.0"
