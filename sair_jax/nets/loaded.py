"""What every loaded network shares: its frozen :class:`Arch`, its parameters on the device, and
jitted forms of its pure functions with that Arch fixed.

Each network module keeps its own wrapper (``arcface.ArcFace``, ``e4e.E4E``,
``expression.ExpressionClassifier``, ``stylegan2.Generator``, ``metrics.fid.FIDInception``,
``metrics.lpips.LPIPS``) for its own entry points; they all derive from :class:`LoadedNetwork`,
and their ``load(dst)`` reads the checkpoint with :func:`sair_jax.io.checkpoint.load_network`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


class LoadedNetwork:
  """A converted network in memory.

  Attributes:
    arch: the network's frozen, hashable Arch (from its ``meta.json``).
    params: its parameter tree, as device arrays.
  """

  def __init__(self, params: Any, arch: Any):
    self.arch = arch
    self.params = jax.tree_util.tree_map(jnp.asarray, params)

  def jit_with_arch(self, fn: Callable[..., Any], **jit_kwargs) -> Callable[..., Any]:
    """``jax.jit`` of ``(params, *args) -> fn(params, self.arch, *args)``.

    ``fn`` is one of the network module's pure functions (``apply(params, arch, ...)``); the
    Arch is closed over, so it is static and each network compiles its own program.
    ``jit_kwargs`` go to ``jax.jit`` (argument numbers count ``params`` as 0).
    """
    arch = self.arch
    return jax.jit(lambda params, *args: fn(params, arch, *args), **jit_kwargs)
