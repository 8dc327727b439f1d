"""Convert rosinality's StyleGAN2 ``.pt`` (dict with ``g_ema``) to a sair_jax checkpoint.

    python -m converters.stylegan2 --src stylegan2-ffhq-config-f.pt \\
        --dst checkpoints/stylegan2-ffhq-1024

Name table (rosinality ``g_ema`` key -> sair_jax parameter; torch layouts on the left):

    style.{i+1}.weight [out, in]            -> mapping/fc{i}/weight [in, out]        (transpose)
    style.{i+1}.bias [out]                  -> mapping/fc{i}/bias
    input.input [1, C, 4, 4]                -> synthesis/const [4, 4, C]             (CHW -> HWC)
    conv1.*                                 -> synthesis/b4/conv1/*
    to_rgb1.*                               -> synthesis/b4/torgb/*
    convs.{2k}.*, convs.{2k+1}.*            -> synthesis/b{8*2^k}/conv0/*, conv1/*
    to_rgbs.{k}.*                           -> synthesis/b{8*2^k}/torgb/*
  inside a layer:
    conv.weight [1, O, I, k, k]             -> weight [k, k, I, O]                   (OIHW -> HWIO)
    conv.modulation.weight [I, w_dim]       -> affine/weight [w_dim, I]              (transpose)
    conv.modulation.bias [I]                -> affine/bias
    noise.weight [1]                        -> noise_strength []
    activate.bias [O] / bias [1, 3, 1, 1]   -> bias [O]
  buffers:
    *.blur.kernel, *.upsample.kernel [4, 4] -> buffers/fir (all must be equal)
    noises.noise_{i} [1, 1, s, s]           -> buffers/noise/b{res}_conv{0,1}
    latent_avg [w_dim] (top level)          -> w_avg; if absent, the mean of 10,000 mapped z

The architecture (resolution, widths, style dimension, mapping depth) is read from the shapes.
"""

from __future__ import annotations

import re

import jax
import numpy as np
from absl import app, flags, logging

from converters.common import ConversionError, TensorTable, read_source, run_cli
from sair_jax.nets import stylegan2

W_AVG_SAMPLES = 10_000
W_AVG_SEED = 0


def infer_arch(state: dict, source: str, lr_mlp: float = 0.01) -> stylegan2.Arch:
  """Reads resolution, widths, w_dim and mapping depth from rosinality key shapes."""
  for key in ("input.input", "conv1.conv.weight", "style.1.weight"):
    if key not in state:
      raise ConversionError(f"{source}: not a rosinality StyleGAN2 generator (no '{key}')")
  w_dim = int(state["style.1.weight"].shape[1])
  n_mlp = len([k for k in state if re.fullmatch(r"style\.\d+\.weight", k)])
  n_blocks = len([k for k in state if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k)])
  channels = [int(state["input.input"].shape[1])]
  for k in range(n_blocks):
    channels.append(int(state[f"convs.{2 * k}.conv.weight"].shape[1]))
  return stylegan2.Arch(resolution=4 * 2**n_blocks, w_dim=w_dim, n_mlp=n_mlp,
                        channels=tuple(channels), lr_mlp=lr_mlp)


def _layer(t: TensorTable, prefix: str, w_dim: int, cin: int, cout: int, k: int,
           torgb: bool = False) -> dict:
  """One modulated layer (StyledConv or ToRGB) of rosinality's port."""
  p = {
      # [1, O, I, k, k] -> [k, k, I, O]
      "weight": t.take(f"{prefix}.conv.weight", (1, cout, cin, k, k))[0].transpose(2, 3, 1, 0),
      "affine": {
          "weight": t.take(f"{prefix}.conv.modulation.weight", (cin, w_dim)).T,  # -> [w_dim, I]
          "bias": t.take(f"{prefix}.conv.modulation.bias", (cin,)),
      },
  }
  if torgb:
    p["bias"] = t.take(f"{prefix}.bias", (1, cout, 1, 1)).reshape(cout)
  else:
    p["bias"] = t.take(f"{prefix}.activate.bias", (cout,))
    p["noise_strength"] = t.take(f"{prefix}.noise.weight", (1,)).reshape(())
  return p


def convert(ckpt: dict, source: str, lr_mlp: float = 0.01) -> tuple[stylegan2.Arch, dict, dict,
                                                                     np.ndarray | None]:
  """Returns ``(arch, params, buffers, latent_avg or None)`` from a loaded rosinality file."""
  if not isinstance(ckpt, dict):
    raise ConversionError(f"{source}: expected a dict, found {type(ckpt).__name__}")
  state = ckpt.get("g_ema", ckpt)
  if not isinstance(state, dict):
    raise ConversionError(f"{source}: 'g_ema' is not a state dict")
  arch = infer_arch(state, source, lr_mlp)
  t = TensorTable(state, source)
  wd = arch.w_dim

  mapping = {}
  for i in range(arch.n_mlp):
    mapping[f"fc{i}"] = {
        "weight": t.take(f"style.{i + 1}.weight", (wd, wd)).T,  # [out, in] -> [in, out]
        "bias": t.take(f"style.{i + 1}.bias", (wd,)),
    }

  c4 = arch.channels_at(4)
  synthesis = {
      "const": t.take("input.input", (1, c4, 4, 4))[0].transpose(1, 2, 0),  # [C,4,4] -> [4,4,C]
      "b4": {"conv1": _layer(t, "conv1", wd, c4, c4, 3),
             "torgb": _layer(t, "to_rgb1", wd, c4, 3, 1, torgb=True)},
  }
  firs = []
  noise = {"b4_conv1": t.take("noises.noise_0", (1, 1, 4, 4))[0, 0]}
  for k, res in enumerate(arch.block_resolutions()[1:]):
    cin, cout = arch.channels_at(res // 2), arch.channels_at(res)
    synthesis[f"b{res}"] = {
        "conv0": _layer(t, f"convs.{2 * k}", wd, cin, cout, 3),
        "conv1": _layer(t, f"convs.{2 * k + 1}", wd, cout, cout, 3),
        "torgb": _layer(t, f"to_rgbs.{k}", wd, cout, 3, 1, torgb=True),
    }
    firs.append(t.take(f"convs.{2 * k}.conv.blur.kernel"))
    firs.append(t.take(f"to_rgbs.{k}.upsample.kernel"))
    for j in range(2):
      noise[f"b{res}_conv{j}"] = t.take(f"noises.noise_{2 * k + 1 + j}", (1, 1, res, res))[0, 0]
  t.finish()
  if any(f.shape != firs[0].shape or not np.array_equal(f, firs[0]) for f in firs):
    raise ConversionError(f"{source}: upsampling filters differ between layers (unsupported)")
  fir = np.asarray(firs[0], np.float64)
  if fir.ndim == 2:  # the separable up layers need an outer product of 1-D taps
    outer = np.outer(fir.sum(axis=1), fir.sum(axis=0) / fir.sum())
    if not np.allclose(outer, fir, rtol=1e-5, atol=1e-7 * np.abs(fir).max()):
      raise ConversionError(f"{source}: the upsampling filter {fir.shape} is not separable "
                            "(not an outer product of 1-D taps); unsupported")

  latent_avg = ckpt.get("latent_avg") if "g_ema" in ckpt else None
  if latent_avg is not None:
    latent_avg = np.asarray(latent_avg, np.float32).reshape(-1)
    if latent_avg.shape != (wd,):
      raise ConversionError(f"{source}: latent_avg has shape {latent_avg.shape}, expected ({wd},)")
  return arch, {"mapping": mapping, "synthesis": synthesis}, {"fir": firs[0], "noise": noise}, \
      latent_avg


def estimate_w_avg(params: dict, arch: stylegan2.Arch, n: int = W_AVG_SAMPLES,
                   seed: int = W_AVG_SEED) -> np.ndarray:
  """Mean of ``n`` mapped standard-normal z (fixed seed), in chunks."""
  fn = jax.jit(lambda z: stylegan2.mapping_fn(params, arch, z).sum(0))
  total = np.zeros((arch.w_dim,), np.float64)
  key = jax.random.PRNGKey(seed)
  for start in range(0, n, 2000):
    key, sub = jax.random.split(key)
    z = jax.random.normal(sub, (min(2000, n - start), arch.z_dim))
    total += np.asarray(fn(z), np.float64)
  return (total / n).astype(np.float32)


def convert_file(src: str, dst: str, lr_mlp: float = 0.01) -> stylegan2.Arch:
  arch, params, buffers, w_avg = convert(read_source(src), src, lr_mlp)
  w_avg_source = "latent_avg"
  if w_avg is None:
    logging.info("no latent_avg in %s: estimating it from %d samples", src, W_AVG_SAMPLES)
    w_avg = estimate_w_avg(params, arch)
    w_avg_source = f"mean of {W_AVG_SAMPLES} mapped samples, seed {W_AVG_SEED}"
  stylegan2.save(dst, params, buffers, arch, w_avg, source=src, w_avg_source=w_avg_source)
  return arch


FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "rosinality StyleGAN2 checkpoint (.pt with 'g_ema').")
flags.DEFINE_string("dst", None, "output directory for the converted checkpoint.")
flags.DEFINE_float("lr_mlp", 0.01, "mapping-network lr multiplier used in training.")


def main(argv):
  del argv
  if not FLAGS.src or not FLAGS.dst:
    raise app.UsageError("--src and --dst are required")

  def _convert():
    arch = convert_file(FLAGS.src, FLAGS.dst, FLAGS.lr_mlp)
    print(f"wrote {FLAGS.dst}: StyleGAN2 {arch.resolution}px, w_dim {arch.w_dim}, "
          f"{arch.n_latent} latents, {arch.n_mlp} mapping layers")

  run_cli(_convert)


if __name__ == "__main__":
  app.run(main)
