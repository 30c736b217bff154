import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as nincompile sets it (keras_import)

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.fixture
def spec_file(tmp_path):
    """Write dedented YAML text to a spec file and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


#: XLA's CPU programs compiled without LLVM's optimisations (see ``backend_env``)
XLA_FLAGS = "--xla_backend_optimization_level=0"


@pytest.fixture(scope="session")
def backend_env(tmp_path_factory):
    """``backend_env(name)``: the environment of a subprocess that runs Keras on the
    backend ``name``.  Every such subprocess of the session shares one JAX
    compilation cache (JAX's own persistent cache, every program kept): a program
    compiled once, say a training step or a weight initialiser of some shape, is
    read back by the next process instead of compiled again.  The cache is keyed by
    the program, the XLA flags and the devices, so it changes no result.

    XLA compiles for the CPU without LLVM's optimisations (``XLA_FLAGS``, for JAX
    and TensorFlow's jit alike; the caller's own XLA_FLAGS are dropped): the tests'
    programs are small and run a few steps, so compiling them took most of their
    time (a weight initialiser of each shape took 0.5 s under JAX), and every
    comparison of two runs compares runs compiled alike."""
    cache = tmp_path_factory.mktemp("jax_compilation_cache")

    def env(backend: str) -> dict[str, str]:
        return {
            **os.environ,
            "KERAS_BACKEND": backend,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "JAX_COMPILATION_CACHE_DIR": str(cache),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
            "XLA_FLAGS": XLA_FLAGS,
        }

    return env


def block_library(res: int, se: int, extra: str = "") -> str:
    """The ``blocks:`` section that the tests of every kind share: ``two`` (two
    branches concatenated), ``res`` (a residual add; its conv has ``res`` channels, the
    input's), ``se`` (squeeze-excite: a multiply by ``se`` sigmoid channels) and the
    ``extra`` blocks (YAML lines indented under ``blocks:``)."""
    return f"""
blocks:
  two:
    branches: [[{{conv: [4, 1]}}], [{{conv: [6, 3], padding: same}}]]
    merge: concat
  res:
    branches: [[{{conv: [{res}, 3], padding: same}}], []]
    merge: add
  se:
    branches: [[], [{{global_pool: avg, keepdims: true}}, {{conv: [{se}, 1], activation: sigmoid}}]]
    merge: multiply
{extra}"""
