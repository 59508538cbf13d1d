"""The version of mtlrec (kept apart so modules can read it without importing the facade)."""

__version__ = "0.2.0.dev0"
