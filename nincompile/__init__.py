"""nincompile: a declarative CNN spec compiler for Keras 3.

The library (:mod:`nincompile.api`) at the top level::

    import nincompile

    print(nincompile.check("resnet18").counts)
    run = nincompile.train("my_spec.yaml", epochs=5, overrides={"train.learning_rate": 0.01})
    print(nincompile.evaluate(run, data="test_images/")["accuracy"])
    nincompile.export(run, "model.onnx")

Everything is imported on first use, so ``import nincompile`` loads neither Keras nor
TensorFlow.  ``nincompile.train``, ``nincompile.export`` and ``nincompile.sweep`` are
also the packages that implement them; calling one calls the API function.
"""

__version__ = "0.1.0"

#: The API's names, each found in :mod:`nincompile.api` on first use.
API = (
    "load", "check", "check_all", "build", "emit", "evaluate", "predict", "compare",
    "list_specs", "Run", "CheckResult", "Compiled", "EmitResult", "SweepResult",
)  # fmt: skip
#: The API functions named like a subpackage: the subpackage itself, made callable.
CALLABLE_PACKAGES = ("train", "export", "sweep")

__all__ = [*API, *CALLABLE_PACKAGES, "__version__"]


def __getattr__(name: str):
    import importlib

    if name in API:
        return getattr(importlib.import_module("nincompile.api"), name)
    if name in CALLABLE_PACKAGES:
        return importlib.import_module(f"nincompile.{name}")
    raise AttributeError(f"module 'nincompile' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
