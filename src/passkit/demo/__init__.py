"""``passkit demo``: the whole PASS system end to end, offline, on real photos shipped inside PyPI packages."""

from passkit.demo.flow import DemoConfig, DemoError, DemoResult, run_demo
from passkit.demo.pool import DEFAULT_POOL, PoolPhoto

__all__ = ["DEFAULT_POOL", "DemoConfig", "DemoError", "DemoResult", "PoolPhoto", "run_demo"]
