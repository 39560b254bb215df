"""The optional compiled helpers of the sources (``passkit.sources._yfcc_scan``, built from C at install time).

``PASSKIT_YFCC_SCANNER`` chooses: ``auto`` (default) uses them when they were built, ``c`` requires them,
``python`` never uses them (the pyarrow / numpy paths, which are also the reference the tests hold them to).
See docs/select-scanner.md.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Literal

Scanner = Literal["auto", "c", "python"]


def load_scanner(choice: Scanner | None = None) -> ModuleType | None:
    """The compiled module, or None for the pure Python paths. ``choice`` defaults to the environment variable
    ``PASSKIT_YFCC_SCANNER``, else ``auto``."""
    choice = choice or os.environ.get("PASSKIT_YFCC_SCANNER", "auto") or "auto"  # type: ignore[assignment]
    if choice not in ("auto", "c", "python"):
        raise ValueError(f"PASSKIT_YFCC_SCANNER / scanner: expected auto, c or python, got {choice!r}")
    if choice == "python":
        return None
    try:
        from passkit.sources import _yfcc_scan  # type: ignore[attr-defined]
    except ImportError as error:
        if choice == "c":
            raise ImportError(
                f"the compiled YFCC scanner is not built ({error}); reinstall passkit with a C compiler "
                "(pip install -e .) or use PASSKIT_YFCC_SCANNER=python"
            ) from error
        return None
    return _yfcc_scan
