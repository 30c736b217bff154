"""Code generation (``nincompile emit``): a spec -> a standalone Keras module.

Importing this package does not import TensorFlow or Keras.
"""

from .files import Generated, render_specs
from .layers import HANDLERS
from .pysrc import CodegenError
from .render import render_source

__all__ = ["HANDLERS", "CodegenError", "Generated", "render_source", "render_specs"]
