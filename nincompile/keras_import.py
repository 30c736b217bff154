"""Import Keras (and with it the backend) without TensorFlow's start-up chatter.

TensorFlow 2.21 prints absl/oneDNN notices to file descriptor 2 while it loads,
whatever TF_CPP_MIN_LOG_LEVEL says. nincompile silences that descriptor only during
the import; Python errors are raised as usual. Set NINCOMPILE_TF_LOGS=1 to see them.

TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI/BF16
or AMX; elsewhere (AVX2 machines such as the 2-core AMD EPYC we measure on) it falls
back to its Eigen kernels, which trained NIN-BN 1.5x slower there
(``bench/bench_peers.py`` with ``--backends tensorflow,tensorflow-eigen``,
docs/benchmarks.md).
nincompile turns oneDNN on unless TF_ENABLE_ONEDNN_OPTS is already set: set it to 0
for TensorFlow's own choice.
"""

from __future__ import annotations

import os
import sys


def import_keras():
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if os.environ.get("NINCOMPILE_TF_LOGS"):
        import keras

        return keras
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401  (its native start-up notices, silenced too)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras
