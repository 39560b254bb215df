"""Builds the optional compiled YFCC100M scanner (passkit.sources._yfcc_scan); everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and the reader uses its pyarrow path.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "passkit.sources._yfcc_scan",
            ["src/passkit/sources/_yfcc_scan.c"],
            extra_compile_args=["-O2"],
            libraries=["m"],
            optional=True,
        )
    ]
)
