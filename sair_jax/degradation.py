"""Alias for the documented import ``sair_jax.degradation``: the module is :mod:`sair_jax.core.degradation`."""
import sys

from sair_jax.core import degradation as _module

sys.modules[__name__] = _module
