"""PROXIMA and PROXIMA+BLEND on-the-fly surrogate control (tynes2024).

`from mdsurrogate.proxima import ProximaCalculator, ProximaSettings, EnsembleSurrogate` works; the names are
imported on first use (module `__getattr__`), so `import mdsurrogate.proxima` alone loads neither torch nor ASE.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "ProximaCalculator": "calculator", "ProximaSettings": "calculator", "ControllerState": "calculator",
    "EnsembleSurrogate": "surrogate", "SurrogateConfig": "surrogate", "StateFormatError": "stateio",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
