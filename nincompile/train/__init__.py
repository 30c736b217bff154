"""Training, evaluation and prediction: the run folder, the loop, schedules."""

from ..callable_package import make_callable

make_callable(__name__)  # nincompile.train(...) is nincompile.api.train(...)
