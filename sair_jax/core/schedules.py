"""Learning-rate schedules of the latent optimisation, as optax schedules (step -> lr).

* ``constant`` — the paper: Adam at a fixed lr (0.1).
* ``cosine_ramp`` — the authors' script: with t = step / steps,
  lr(t) = lr0 · (0.5 − 0.5·cos(π · min(1, (1 − t)/rampdown))) · min(1, t / rampup),
  rampdown = 0.25, rampup = 0.05 (note lr = 0 at step 0, as in the script).
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "cosine_ramp")


def constant(lr: float) -> optax.Schedule:
  """lr at every step."""
  return optax.constant_schedule(lr)


def cosine_ramp(lr: float, steps: int, rampdown: float = 0.25,
                rampup: float = 0.05) -> optax.Schedule:
  """The authors' warm-up + cosine ramp-down over ``steps`` iterations (see module doc)."""

  def schedule(count):
    t = jnp.asarray(count, jnp.float32) / steps
    ramp = jnp.minimum(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * jnp.cos(jnp.pi * ramp)
    return lr * ramp * jnp.minimum(1.0, t / rampup)

  return schedule


def make(name: str, lr: float, steps: int) -> optax.Schedule:
  """Schedule by name: 'constant' | 'cosine_ramp'."""
  if name == "constant":
    return constant(lr)
  if name == "cosine_ramp":
    return cosine_ramp(lr, steps)
  raise ValueError(f"unknown learning-rate schedule {name!r}; expected one of {SCHEDULES}")
