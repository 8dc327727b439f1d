"""The networks one restoration run needs, loaded from converted checkpoints (or built untrained).

:func:`load_networks` checks every checkpoint the config needs *before* loading any of them and
raises :class:`MissingCheckpoints` with one line per missing file and the exact command that
creates it, so a user fixes everything in one go.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sair_jax.nets import arcface, stylegan2
from sair_jax.errors import UserError

CONVERTERS = {
    "stylegan2": "python -m converters.stylegan2 --src stylegan2-ffhq-config-f.pt --dst {dst}",
    "arcface": "python -m converters.arcface --src iresnet50.pth --dst {dst}",
    "e4e": "python -m converters.e4e --src e4e_ffhq_encode.pt --dst {dst}",
    "expression": "python -m converters.expression --src emotion_model.hdf5 --dst {dst}",
    "directions": "python -m sair_jax.directions --from_npy DIR_OF_EMOTION_NPY --out {dst}  "
                  "(or fit them: python -m sair_jax.directions --generator ... --out {dst})",
}


class MissingCheckpoints(UserError):
  """Required checkpoints are absent; the message lists each with its converter command."""


@dataclasses.dataclass
class Networks:
  g: stylegan2.Generator
  arcface: arcface.ArcFace
  e4e: Any = None  # sair_jax.nets.e4e.E4E or None (references are then projected)
  expression: Any = None  # sair_jax.nets.expression.ExpressionClassifier or None
  directions: Any = None  # sair_jax.expression_directions.file.Directions or None
  untrained: bool = False
  sources: dict = dataclasses.field(default_factory=dict)  # name -> path, for the manifest

  def params(self) -> dict:
    """The frozen parameters the objective differentiates through (a pytree)."""
    return {"g_params": self.g.params, "g_buffers": self.g.buffers,
            "arcface": self.arcface.params}


def _exists(kind: str, path: str) -> bool:
  if kind == "directions":
    return os.path.isfile(path)
  return os.path.isfile(os.path.join(path, "meta.json"))


def required(config) -> list[str]:
  """Names of the checkpoints this config cannot run without."""
  names = [] if config.untrained else ["stylegan2", "arcface"]
  if config.expression.mode == "infer":
    names.append("expression")
  if config.expression.mode != "none" and config.loss.expression > 0:
    names.append("directions")
  return names


def check_checkpoints(config) -> None:
  """Raises :class:`MissingCheckpoints` listing every required checkpoint that is absent."""
  missing = []
  for name in required(config):
    path = config.checkpoints[name]
    if not _exists(name, path):
      missing.append(f"  {name}: {path} is missing; create it with: "
                     + CONVERTERS[name].format(dst=path))
  if missing:
    raise MissingCheckpoints("missing checkpoints:\n" + "\n".join(missing))


def load_networks(config) -> Networks:
  """Loads what ``config`` needs (checkpoint errors are one-line CheckpointErrors)."""
  check_checkpoints(config)
  paths = config.checkpoints
  if config.untrained:
    nets = untrained_networks(config)
  else:
    nets = Networks(g=stylegan2.load(paths.stylegan2), arcface=arcface.load(paths.arcface))
    nets.sources = {"stylegan2": paths.stylegan2, "arcface": paths.arcface}
    if not config.projection.force and _exists("e4e", paths.e4e):
      from sair_jax.nets import e4e
      nets.e4e = e4e.load(paths.e4e)
      nets.sources["e4e"] = paths.e4e
  # The classifier: needed to infer expressions; with expressions used otherwise, loaded when
  # present to check what the restored faces show (the report's expression_seen).
  if "expression" in required(config) or (config.expression.mode != "none"
                                           and _exists("expression", paths.expression)):
    from sair_jax.nets import expression
    nets.expression = expression.load(paths.expression)
    nets.sources["expression"] = paths.expression
  if "directions" in required(config):
    from sair_jax.expression_directions import file as directions
    nets.directions = directions.load_directions(paths.directions)
    nets.sources["directions"] = paths.directions
  return nets


# ------------------------------------------------------------------------------------------
# Untrained networks for the smoke preset and tests
# ------------------------------------------------------------------------------------------

SMOKE_G = stylegan2.Arch(resolution=64, w_dim=32, n_mlp=2, channels=(32, 32, 32, 16, 16))
SMOKE_ARCFACE = arcface.Arch(layers=(1, 1), widths=(8, 16), strides=(2, 2), stem_width=8,
                             embedding_size=32, input_size=32, feature_map=8)


def random_params(shapes: Any, rng: jax.Array) -> Any:
  """Random values for a shape tree: kernels ~ N(0, 1/fan_in), norms at identity.

  One normal draw for the whole tree, cut into the kernels (one small program, not one random
  generator per tensor).
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(
      shapes, is_leaf=lambda s: isinstance(s, tuple))
  names = [str(path[-1].key) if hasattr(path[-1], "key") else "" for path, _ in leaves]
  random = [name not in ("var", "scale", "mean", "bias", "alpha") for name in names]
  sizes = [int(np.prod(shape)) if r else 0 for (_, shape), r in zip(leaves, random)]
  draw = np.asarray(jax.random.normal(rng, (max(1, sum(sizes)),)))
  out, start = [], 0
  for (_, shape), name, size in zip(leaves, names, sizes):
    if name in ("var", "scale"):
      out.append(jnp.ones(shape))
    elif name in ("mean", "bias"):
      out.append(jnp.zeros(shape))
    elif name == "alpha":
      out.append(jnp.full(shape, 0.25))
    else:
      fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
      out.append(jnp.asarray(draw[start:start + size].reshape(shape) / np.sqrt(fan_in)))
    start += size
  return jax.tree_util.tree_unflatten(treedef, out)


def untrained_networks(config) -> Networks:
  """A random 64 px generator and a random small ArcFace (smoke runs; results meaningless)."""
  key_g, key_a = jax.random.split(jax.random.PRNGKey(config.solver.seed))
  params, buffers = stylegan2.init_params(SMOKE_G, key_g)
  g = stylegan2.Generator(params, buffers, SMOKE_G, jnp.zeros(SMOKE_G.w_dim))
  z = jax.random.normal(jax.random.PRNGKey(1), (1000, SMOKE_G.z_dim))
  g.w_avg = jnp.mean(g.mapping(z), axis=0)
  a = arcface.ArcFace(random_params(arcface.param_shapes(SMOKE_ARCFACE), key_a), SMOKE_ARCFACE)
  return Networks(g=g, arcface=a, untrained=True,
                  sources={"stylegan2": "untrained (random)", "arcface": "untrained (random)"})
