"""Which backend and compilation train fastest on this device, from measured figures,
and the one line ``train`` prints when the chosen setting is known to be slow.

The figures are NIN-BN (``specs/nin_bamd.yaml``, batch 128, flip + shift) training
images/s, copied from the benchmark result files in the repository (a test checks
that they still match): :data:`CPU_SOURCE` from ``bench/bench_peers.py`` on a shared
2-core CPU, :data:`GPU_SOURCE` from ``bench/gpu_check.sh`` on one H200 (JAX only).
On a CPU TensorFlow without jit is the fastest, level with the torch backend; JAX's
jit is still faster than its eager mode.  On a GPU JAX with jit is the measured path.
``jit_compile: auto`` (:func:`nincompile.train.recipe.jit_compile`) follows the same
figures.
"""

from __future__ import annotations

#: Where :data:`CPU_IMAGES_PER_S` comes from (its ``trainers``' ``images_per_s``).
CPU_SOURCE = "bench/results/peers.json"
#: NIN-BN training images/s on a 2-core CPU by ``(backend, jit_compile)``: the
#: trainers ``nincompile:<backend>[-jit|-nojit]`` of :data:`CPU_SOURCE` (1,024 images,
#: 2 interleaved rounds, AVX-512 AMD EPYC, 1-minute load 0.5-2.1 with the bench's own
#: processes; the ratios are what the advice uses).
CPU_IMAGES_PER_S: dict[tuple[str, bool], float] = {
    ("tensorflow", False): 109.29,
    ("tensorflow", True): 40.21,
    ("jax", True): 32.63,
    ("jax", False): 21.70,
    ("torch", False): 107.68,
}
#: The trainer of :data:`CPU_SOURCE` behind each key of :data:`CPU_IMAGES_PER_S`.
CPU_TRAINERS = {
    ("tensorflow", False): "nincompile:tensorflow",
    ("tensorflow", True): "nincompile:tensorflow-jit",
    ("jax", True): "nincompile:jax",
    ("jax", False): "nincompile:jax-nojit",
    ("torch", False): "nincompile:torch",
}
#: Where :data:`GPU_IMAGES_PER_S` comes from (``<precision>.device_images_per_s``).
GPU_SOURCE = "bench/results/gpu/gpu_check.json"
#: NIN-BN training images/s under JAX with jit, data on the device, one H200.
GPU_IMAGES_PER_S = {"float32": 34525.6, "bfloat16": 44177.4}
#: A setting is called slow when the fastest measured one is at least this much faster.
SLOW_RATIO = 1.2

FASTEST_ON_CPU = ("tensorflow", False)


def _name(backend: str, jit: bool) -> str:
    if backend == "tensorflow":
        return "TensorFlow with jit_compile on" if jit else "TensorFlow without jit"
    if backend == "jax":
        return "JAX" if jit else "JAX with jit_compile off"
    return backend


def slow_setting(backend: str, device_kind: str, jit: bool) -> str | None:
    """One line when training under ``backend`` with ``jit`` on a ``device_kind``
    (``"cpu"``/``"gpu"``) is known to be slower than another setting; None otherwise."""
    if device_kind == "gpu":
        if backend == "jax" and not jit and CPU_IMAGES_PER_S[("jax", False)] > 0:
            r = CPU_IMAGES_PER_S[("jax", True)] / CPU_IMAGES_PER_S[("jax", False)]
            return (
                f"jit_compile is off under JAX: JAX with jit trained NIN-BN ~{r:.1f}x faster "
                f"than without on CPU ({CPU_SOURCE}), and the GPU figures are with jit "
                f"({GPU_SOURCE}); --jit-compile auto turns it on"
            )
        if backend != "jax":
            return (
                f"training under {backend} on a GPU; NIN-BN's measured GPU figures are under "
                f"JAX with jit ({GPU_IMAGES_PER_S['float32']:,.0f} images/s in float32, "
                f"{GPU_IMAGES_PER_S['bfloat16']:,.0f} in bfloat16 on one H200, {GPU_SOURCE}); "
                "KERAS_BACKEND=jax"
            )
        return None
    key = (backend, bool(jit))
    if key not in CPU_IMAGES_PER_S or key == FASTEST_ON_CPU:
        return None
    best, here = CPU_IMAGES_PER_S[FASTEST_ON_CPU], CPU_IMAGES_PER_S[key]
    if best <= 0 or here <= 0:  # not measured
        return None
    r = best / here
    if r < SLOW_RATIO:
        return None
    figures = f"{best:.0f} vs {here:.0f} images/s on a shared 2-core CPU, {CPU_SOURCE}"
    if backend == "tensorflow":
        return (
            f"jit_compile is on under TensorFlow on CPU; without it NIN-BN trained ~{r:.1f}x "
            f"faster here ({figures}); --jit-compile auto turns it off on CPU"
        )
    how = "KERAS_BACKEND=tensorflow"
    if backend == "jax" and not jit and CPU_IMAGES_PER_S[("jax", True)] > 0:
        jit_r = CPU_IMAGES_PER_S[("jax", True)] / here
        how += f", or --jit-compile auto (JAX's jit was ~{jit_r:.1f}x its eager mode)"
    return (
        f"training under {_name(backend, jit)} on CPU; TensorFlow without jit trained NIN-BN "
        f"~{r:.1f}x faster here ({figures}); {how}"
    )
