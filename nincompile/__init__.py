"""nincompile: a declarative CNN spec compiler for Keras 3."""

__version__ = "0.1.0"
