"""Build the optional native aggregator.

The extension is optional so that ``pip install`` never fails on a machine without a
compiler: the pure-Python twin then serves. ``BIZOPS_OTEL_REQUIRE_EXTENSIONS=1`` turns a
failed build into an error (CI sets it, so a broken build cannot pass silently), and
``BIZOPS_OTEL_NO_EXTENSIONS=1`` skips the build altogether.
"""

import os

from setuptools import Extension, setup


def _flag(name: str) -> bool:
    # The same rule as bizops_otel._twins.flag (setup.py cannot import the package).
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


REQUIRE = _flag("BIZOPS_OTEL_REQUIRE_EXTENSIONS")
SKIP = _flag("BIZOPS_OTEL_NO_EXTENSIONS") and not REQUIRE


def _extensions() -> list[Extension]:
    if SKIP:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE:
            raise
        return []
    # Each native twin is built into the subpackage of its pure twin, from the folder of
    # ext/ named after it: ext/aggregate/_aggregator_c.pyx mirrors
    # src/bizops_otel/aggregate/_aggregator_py.py.
    extensions = [
        Extension(
            f"bizops_otel.{stage}.{name}",
            sources=[f"ext/{stage.replace('.', '/')}/{name}.pyx"],
            extra_compile_args=["-O3"],
            libraries=["m"],
            optional=not REQUIRE,
        )
        for stage, name in (
            ("aggregate", "_aggregator_c"),
            ("span", "_hooks_c"),
            ("export", "_lines_c"),
            ("export", "_digest_c"),
            ("export.otlp", "_points_c"),
        )
    ]
    return list(
        cythonize(
            extensions,
            build_dir=os.path.join(_build_base(), "cython"),
            language_level=3,
            compiler_directives={
                "boundscheck": False,
                "wraparound": False,
                "cdivision": True,
                "initializedcheck": False,
            },
        )
    )


def _build_base() -> str:
    """A build folder per toolchain. pip builds in the source tree, and the environments of
    `make test` build one checkout with different releases of Cython and setuptools (the
    newest, and the oldest declared): in a shared folder, a build would take the generated
    C or the compiled modules another toolchain left there, being newer than the sources."""
    import Cython
    import setuptools

    toolchain = f"cython-{Cython.__version__}-setuptools-{setuptools.__version__}"
    return os.path.join("build", toolchain)


EXTENSIONS = _extensions()
setup(ext_modules=EXTENSIONS,
      options={"build": {"build_base": _build_base()}} if EXTENSIONS else {})
