"""Sweeps: train every variant of a spec (and several seeds) as plain ``nincompile
train`` runs, then compare them.

* ``members``: which runs a sweep holds, their folders and their shards;
* ``runner``: runs the members (one at a time, or ``--jobs N`` processes), skipping
  finished ones and resuming interrupted ones;
* ``compare``: one table (Markdown and CSV) and one figure over run folders.
"""

from ..callable_package import make_callable

make_callable(__name__)  # nincompile.sweep(...) is nincompile.api.sweep(...)
