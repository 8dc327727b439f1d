"""StyleGAN2: golden parity with rosinality's code, the full config-f layout, loading, errors."""

import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fixture, jaxpr_equations, rel_err
from converters import stylegan2 as sg2_converter
from sair_jax.io import checkpoint
from sair_jax.nets import stylegan2
from layouts import official_layout, random_state_dict

# float32 through ~15 convolutions: observed errors are ~1e-6; 1e-4 leaves room for other
# BLAS/conv algorithms while still catching any layout, scale or alignment mistake (those are O(1)).
RTOL = 1e-4


@pytest.fixture(scope="module")
def g32(tmp_path_factory):
  dst = tmp_path_factory.mktemp("ckpt") / "sg2_s32"
  sg2_converter.convert_file(str(fixture("sg2_s32.pt")), str(dst))
  return stylegan2.load(dst)


@pytest.fixture(scope="module")
def ref():
  return np.load(fixture("sg2_s32_ref.npz"))


def test_golden_outputs(g32, ref):
  assert (g32.resolution, g32.w_dim, g32.n_latent) == (int(ref["size"]), int(ref["style_dim"]),
                                                        ref["wplus"].shape[1])
  assert g32.arch.n_mlp == int(ref["n_mlp"])
  w = g32.mapping(ref["z"])
  assert rel_err(w, ref["w"]) <= RTOL
  img_w = g32.synthesis(ref["wplus"], noise="const")
  assert img_w.shape == (3, 32, 32, 3) and img_w.dtype == jnp.float32
  assert rel_err(img_w, ref["img_w"].transpose(0, 2, 3, 1)) <= RTOL  # NCHW -> NHWC
  img_z = g32.synthesis(g32.to_wplus(w), noise="const")
  assert rel_err(img_z, ref["img_z"].transpose(0, 2, 3, 1)) <= RTOL


def test_folded_upconv_gives_the_same_golden_outputs(g32, ref):
  img = stylegan2.synthesis_fn(g32.params, g32.buffers, g32.arch, jnp.asarray(ref["wplus"]),
                               "const", upconv="folded")
  assert rel_err(img, ref["img_w"].transpose(0, 2, 3, 1)) <= RTOL


@pytest.mark.parametrize("remat", [False, True])
def test_separable_upconv_multiplies_no_zeros(remat):
  """Forward and gradient to W+: plain stride-1 convs only, and XLA's FLOP count equals the
  network's necessary arithmetic (the folded form is measured as the contrast)."""
  arch = stylegan2.Arch(32, 64, 2, (64, 64, 64, 32))
  params, buffers = stylegan2.init_params(arch, jax.random.PRNGKey(0))
  ws = jnp.zeros((1, arch.n_latent, arch.w_dim))

  def synth(w, upconv):
    return stylegan2.synthesis_fn(params, buffers, arch, w, "const", remat=remat, upconv=upconv)

  grad = lambda upconv: jax.grad(lambda w: jnp.sum(synth(w, upconv)))
  convs = jaxpr_equations(jax.make_jaxpr(grad("separable"))(ws).jaxpr,
                          "conv_general_dilated")
  assert len(convs) >= 2 * 3 * len(arch.block_resolutions())  # forward and backward convs
  for eqn in convs:
    assert set(eqn.params["lhs_dilation"]) == {1} and set(eqn.params["rhs_dilation"]) == {1}
    assert set(eqn.params["window_strides"]) == {1}
    assert eqn.params["feature_group_count"] == 1 and eqn.params["batch_group_count"] == 1

  def flops(fn):
    return jax.jit(fn).lower(ws).compile().cost_analysis()["flops"]

  need = stylegan2.synthesis_conv_flops(arch)
  # XLA does not count taps that fall on the zero padding (a few % at 4-16 px), and elementwise
  # work (modulation, FIR, activations) adds well under 5% at these widths.
  assert 0.95 * need <= flops(lambda w: synth(w, "separable")) <= 1.05 * need
  # The gradient to the activations costs one forward again; remat recomputes the forward once.
  assert flops(grad("separable")) <= (3.1 if remat else 2.1) * need
  assert flops(lambda w: synth(w, "folded")) >= 1.5 * need


def test_random_noise_is_keyed(g32, ref):
  ws = ref["wplus"][:2]
  a = g32.synthesis(ws, noise="random", rng=jax.random.PRNGKey(1))
  b = g32.synthesis(ws, noise="random", rng=jax.random.PRNGKey(1))
  c = g32.synthesis(ws, noise="random", rng=jax.random.PRNGKey(2))
  const = g32.synthesis(ws, noise="const")
  np.testing.assert_array_equal(a, b)
  assert rel_err(a, c) > 1e-3 and rel_err(a, const) > 1e-3
  with pytest.raises(ValueError, match="rng"):
    g32.synthesis(ws, noise="random")


def test_truncation(g32, ref):
  w = g32.mapping(ref["z"])
  np.testing.assert_allclose(g32.mapping(ref["z"], truncation=0.0),
                             np.broadcast_to(g32.w_avg, w.shape), rtol=1e-6)
  half = g32.mapping(ref["z"], truncation=0.5)
  np.testing.assert_allclose(half, 0.5 * (w + g32.w_avg), rtol=1e-5, atol=1e-6)


def test_vmap_equals_batch_and_no_retrace(g32, ref):
  p, b, arch = g32.params, g32.buffers, g32.arch
  ws = jnp.asarray(ref["wplus"])

  @jax.jit
  @chex.assert_max_traces(n=1)
  def one(w):  # [n_latent, w_dim] -> [H, W, 3]
    return stylegan2.synthesis_fn(p, b, arch, w[None], "const")[0]

  looped = jnp.stack([one(w) for w in ws])
  vmapped = jax.vmap(lambda w: stylegan2.synthesis_fn(p, b, arch, w[None], "const")[0])(ws)
  batched = stylegan2.synthesis_fn(p, b, arch, ws, "const")
  np.testing.assert_allclose(vmapped, batched, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(looped, batched, rtol=1e-5, atol=1e-5)


def test_remat_and_bf16_match_float32(g32, ref):
  p, b, arch = g32.params, g32.buffers, g32.arch
  ws = jnp.asarray(ref["wplus"])
  loss = lambda w, **kw: jnp.sum(stylegan2.synthesis_fn(p, b, arch, w, "const", **kw) ** 2)
  g_plain = jax.jit(jax.grad(loss))(ws)  # jitted: op by op, the gradient takes a minute
  g_remat = jax.jit(jax.grad(lambda w: loss(w, remat=True)))(ws)
  # Two compiled programs (XLA fuses and orders sums its own way in each): the project's
  # float32 tolerance, max |a - b| <= 1e-4 max |b| (measured: 4e-5).
  assert np.abs(g_remat - g_plain).max() <= 1e-4 * np.abs(g_plain).max()
  img16 = jax.jit(lambda w: stylegan2.synthesis_fn(p, b, arch, w, "const",
                                                   dtype=jnp.bfloat16))(ws)
  assert img16.dtype == jnp.float32
  # bf16 has an 8-bit mantissa: ~1% of the output range is the expected error.
  assert rel_err(img16, ref["img_w"].transpose(0, 2, 3, 1)) < 0.05


def test_checkpoint_round_trip(g32, tmp_path):
  dst = tmp_path / "copy"
  stylegan2.save(dst, g32.params, g32.buffers, g32.arch, g32.w_avg)
  again = stylegan2.load(dst)
  assert again.arch == g32.arch
  chex.assert_trees_all_equal(again.params, g32.params)
  chex.assert_trees_all_equal(again.buffers, g32.buffers)
  np.testing.assert_array_equal(again.w_avg, g32.w_avg)


def test_w_avg_estimated_when_absent():
  ckpt = {"g_ema": _fixture_state()}  # no top-level latent_avg
  arch, params, _, latent_avg = sg2_converter.convert(ckpt, "synthetic")
  assert latent_avg is None
  est = sg2_converter.estimate_w_avg(params, arch)
  # An independent 10k-sample mean (other seed) agrees to Monte-Carlo precision.
  z = jax.random.normal(jax.random.PRNGKey(123), (10_000, arch.z_dim))
  w = np.asarray(stylegan2.mapping_fn(params, arch, z))
  sem = w.std(0) / np.sqrt(10_000)
  assert np.all(np.abs(est - w.mean(0)) < 6 * sem + 1e-6)
  assert np.any(np.abs(est - w.mean(0)) > 0)  # really another sample, not the same numbers
  assert est.shape == (arch.w_dim,)


def test_a_non_separable_upsampling_filter_is_refused():
  state = dict(_fixture_state())
  for key in [k for k in state if k.endswith("blur.kernel") or k.endswith("upsample.kernel")]:
    state[key] = np.asarray(state[key]) + np.eye(4, dtype=np.float32)  # rank 2 now
  with pytest.raises(sg2_converter.ConversionError, match="not separable"):
    sg2_converter.convert({"g_ema": state}, "odd-filter.pt")


def _fixture_state():
  from sair_jax.io.torch_reader import load_torch_file
  return load_torch_file(fixture("sg2_s32.pt"))["g_ema"]


@pytest.mark.parametrize("res,w_dim,n_mlp,channels", [
    (8, 16, 2, (8, 6)),
    (64, 32, 3, (16, 16, 12, 8, 8)),
])
def test_other_shapes_are_read_from_the_checkpoint(tmp_path, res, w_dim, n_mlp, channels):
  arch = stylegan2.Arch(res, w_dim, n_mlp, channels)
  params, buffers = stylegan2.init_params(arch, jax.random.PRNGKey(0))
  stylegan2.save(tmp_path / "g", params, buffers, arch, jnp.zeros(w_dim))
  g = stylegan2.load(tmp_path / "g")
  assert (g.resolution, g.n_latent, g.w_dim) == (res, arch.n_latent, w_dim)
  img = g.synthesis(jnp.zeros((2, g.n_latent, w_dim)))
  assert img.shape == (2, res, res, 3) and np.all(np.isfinite(img))


@pytest.mark.slow
def test_full_config_f_layout_forward_and_grad(tmp_path):
  ckpt = {"g_ema": random_state_dict(official_layout("stylegan2_ffhq_config_f"), seed=0),
          "latent_avg": np.zeros(512, np.float32)}
  arch, params, buffers, w_avg = sg2_converter.convert(ckpt, "config-f layout")
  assert (arch.resolution, arch.w_dim, arch.n_mlp, arch.n_latent) == (1024, 512, 8, 18)
  assert arch.channels == (512, 512, 512, 512, 512, 256, 128, 64, 32)
  ws = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (1, 18, 512))

  def loss(w):
    img = stylegan2.synthesis_fn(params, buffers, arch, w, "const")
    return jnp.mean(img**2), img

  (value, img), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(ws)
  assert img.shape == (1, 1024, 1024, 3)
  assert np.all(np.isfinite(img)) and np.isfinite(value)
  assert grad.shape == ws.shape and np.all(np.isfinite(grad))
  assert np.all(np.abs(grad).sum(-1) > 0)  # every W+ row influences the image


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "converters.stylegan2", *args],
                        capture_output=True, text=True, timeout=300)


def test_cli_converts(tmp_path):
  r = _cli("--src", str(fixture("sg2_s32.pt")), "--dst", str(tmp_path / "g"))
  assert r.returncode == 0, r.stderr
  assert "32px" in r.stdout
  assert stylegan2.load(tmp_path / "g").resolution == 32


@pytest.mark.parametrize("src,message", [
    ("missing.pt", "no such file"),
    ("iresnet_1111.pth", "not a rosinality StyleGAN2 generator"),
    ("truncated", "truncated|not a readable|broken zip|cannot read"),
])
def test_cli_one_line_errors(tmp_path, src, message):
  if src == "truncated":
    path = tmp_path / "cut.pt"
    data = fixture("sg2_s32.pt").read_bytes()
    path.write_bytes(data[: len(data) // 2])
  elif src == "missing.pt":
    path = tmp_path / src
  else:
    path = fixture(src)
  r = _cli("--src", str(path), "--dst", str(tmp_path / "out"))
  assert r.returncode == 1
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
  assert str(path.name) in lines[0]
  import re
  assert re.search(message, lines[0]), lines[0]
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["nothing", "no_meta", "wrong_kind", "no_params"])
def test_load_errors(tmp_path, g32, damage):
  dst = tmp_path / "g"
  if damage != "nothing":
    stylegan2.save(dst, g32.params, g32.buffers, g32.arch, g32.w_avg)
  if damage == "no_meta":
    (dst / "meta.json").unlink()
  elif damage == "wrong_kind":
    (dst / "meta.json").write_text('{"kind": "arcface", "format": 1}')
  elif damage == "no_params":
    import shutil
    shutil.rmtree(dst / "params")
  with pytest.raises(checkpoint.CheckpointError) as err:
    stylegan2.load(dst)
  assert str(dst) in str(err.value) and "\n" not in str(err.value)
