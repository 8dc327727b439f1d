"""Alias for the documented import ``sair_jax.losses``: the module is :mod:`sair_jax.core.losses`."""
import sys

from sair_jax.core import losses as _module

sys.modules[__name__] = _module
