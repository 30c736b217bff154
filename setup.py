"""What pyproject.toml cannot say: the built-in specs ship inside the package.

The repository keeps one copy of them, in ``specs/`` (with ``specs/applications/``),
where the README, the tests, ``generated/`` and the benches name them.  The wheel
carries that folder as the package data ``nincompile/specs/``, found at run time by
:mod:`nincompile.spec.builtin`.  Packages are still discovered (a new
``nincompile/<package>`` is always in the wheel; ``specs/``, ``generated/`` and
``bench/`` beside it never are as packages).
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["nincompile", "nincompile.*"]),
        "nincompile.specs",
        "nincompile.specs.applications",
    ],
    package_dir={"nincompile.specs": "specs"},
)
