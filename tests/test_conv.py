"""sair_jax.nets.conv: lax's values and gradients, in programs XLA keeps canonical inside loops."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from conftest import jaxpr_equations, rel_err
from sair_jax.nets.conv import conv2d

_DN = ("NHWC", "HWIO", "NHWC")

CASES = [  # (H, W, k, stride, ((top, bottom), (left, right)))
    (8, 8, 3, 1, ((1, 1), (1, 1))),  # the 3x3 'same' conv (ArcFace, StyleGAN2)
    (5, 5, 1, 1, ((0, 0), (0, 0))),  # 1x1 (ToRGB)
    (9, 6, 2, 1, ((1, 0), (0, 1))),  # even kernel, asymmetric padding (polyphase sub-kernels)
    (8, 8, 6, 1, ((2, 3), (3, 2))),  # the folded 6x6 up-conv kernel
    (6, 6, 3, 1, ((-1, 2), (2, -1))),  # negative padding crops
    (8, 8, 3, 2, ((1, 1), (1, 1))),  # ArcFace's strided 3x3
    (7, 9, 3, 2, ((1, 1), (1, 1))),  # odd sizes
    (8, 8, 1, 2, ((0, 0), (0, 0))),  # ArcFace's 1x1 stride-2 shortcut
    (8, 8, 4, 2, ((1, 2), (2, 1))),
    (7, 7, 5, 2, ((0, 0), (2, 2))),
    (9, 9, 3, 3, ((1, 1), (1, 1))),  # other strides: lax's own gradient
]


def _lax(x, w, stride, padding):
  return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DN)


@pytest.mark.parametrize("h,w,k,stride,padding", CASES)
def test_values_and_gradients_match_lax(h, w, k, stride, padding):
  rng = np.random.default_rng(h * 100 + w * 10 + k + stride)
  x = jnp.asarray(rng.normal(size=(2, h, w, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(k, k, 3, 4)), jnp.float32)
  want, want_vjp = jax.vjp(lambda x, w: _lax(x, w, stride, padding), x, kernel)
  got, got_vjp = jax.vjp(lambda x, w: conv2d(x, w, stride, padding), x, kernel)
  assert got.shape == want.shape
  assert rel_err(got, want) <= 1e-6
  dy = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
  for g, r in zip(got_vjp(dy), want_vjp(dy)):  # d/dx and d/dw
    assert g.shape == r.shape
    assert rel_err(g, r) <= 1e-6


def test_strided_gradient_multiplies_no_inserted_zeros():
  """d/dx of a stride-2 conv: stride-1 convolutions of undilated inputs only, one per polyphase
  part, in the traced program and in what XLA compiles (the unused weight gradient is gone)."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 16, 16, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 4, 8)), jnp.float32)
  grad = jax.grad(lambda x, w: jnp.sum(conv2d(x, w, 2, ((1, 1), (1, 1))) ** 2))
  for eqn in jaxpr_equations(jax.make_jaxpr(grad)(x, w).jaxpr, "conv_general_dilated"):
    assert set(eqn.params["lhs_dilation"]) == {1} and set(eqn.params["rhs_dilation"]) == {1}
  hlo = jax.jit(grad).lower(x, w).compile().as_text()
  convs = re.findall(r"convolution\(.*", hlo)
  dots = re.findall(r" dot\(.*", hlo)  # XLA turns the 1x1-tap phase into a matrix product
  assert len(convs) + len(dots) == 5, hlo  # the strided forward; 2x2, 2x1, 1x2, 1x1 taps back
  assert sum("stride=2x2" in c for c in convs) == 1
  assert not any("lhs_dilate" in c for c in convs)
  # The contrast: JAX's own rule dilates the output gradient with zeros.
  lax_grad = jax.grad(lambda x, w: jnp.sum(_lax(x, w, 2, ((1, 1), (1, 1))) ** 2))
  assert "lhs_dilate=2x2" in jax.jit(lax_grad).lower(x, w).compile().as_text()


def test_backward_convolutions_stay_canonical_inside_a_loop():
  """The reason for the module: in a scanned gradient step every convolution XLA:CPU compiles
  has the canonical kernel layout (01io), which its convolution library runs; JAX's own rule
  leaves half of them as 01oi, which XLA:CPU runs in its naive loop emitter inside loops."""
  rng = np.random.default_rng(0)
  w1 = jnp.asarray(rng.normal(size=(3, 3, 4, 8)), jnp.float32) * 0.1
  w2 = jnp.asarray(rng.normal(size=(3, 3, 8, 8)), jnp.float32) * 0.1
  x0 = jnp.asarray(rng.normal(size=(2, 16, 16, 4)), jnp.float32)

  def loop(conv):
    def loss(x):
      y = conv(conv(x, w1, 1, ((1, 1), (1, 1))), w2, 2, ((1, 1), (1, 1)))
      return jnp.sum(y ** 2)

    def body(x, _):
      return x - 1e-3 * jax.grad(loss)(x), None
    return jax.jit(lambda x: lax.scan(body, x, None, length=3)[0])

  def kernel_layouts(fn):
    hlo = fn.lower(x0).compile().as_text()
    return re.findall(r"convolution\(.*dim_labels=b01f_01(io|oi)->b01f", hlo)

  ours = kernel_layouts(loop(conv2d))
  assert len(ours) >= 4 and set(ours) == {"io"}, ours
  # The contrast (what this module replaces): lax's own gradient inside the same loop.
  assert "oi" in kernel_layouts(loop(lambda x, w, s, p: _lax(x, w, s, p)))
  np.testing.assert_allclose(loop(conv2d)(x0), loop(lambda x, w, s, p: _lax(x, w, s, p))(x0),
                             rtol=1e-5, atol=1e-5)
