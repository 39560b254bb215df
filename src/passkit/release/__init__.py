"""Versioned releases: ``build_release`` (filtered folder -> release vN) and ``takedown`` (vN -> vN+1)."""

from passkit.release.builder import ReleaseReport, build_release
from passkit.release.config import ReleaseConfig
from passkit.release.source import ReleaseError
from passkit.release.takedown import TakedownReport, takedown

__all__ = ["ReleaseConfig", "ReleaseError", "ReleaseReport", "TakedownReport", "build_release", "takedown"]
