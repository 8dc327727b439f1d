"""Where the time and memory of a SAIR restoration go, per batch size (random weights).

    python benchmarks/restore_throughput.py --batch 1,8,16,auto [--dtype bfloat16]
        [--upconv separable,folded] [--preset paper|official] [--histogram] [--remat]
        [--device_counts 1,2,4,8] [--steps 400] [--timed_steps 20] [--time]

The program measured is the real one: the solver's compiled chunk (StyleGAN2 synthesis, config-f
widths at ``--resolution``, ArcFace IResNet-50, the degradation operator, the per-image Adam step,
vmapped, scanned, sharded over the devices), with random weights: speed does not depend on
the values. For every (up-conv form, device count, batch size) it prints

* XLA's own numbers for ONE step, from the compiled one-step program (the same on any machine
  that compiles for the same backend): GFLOP per image-step, GB accessed per image-step, and
  the compiled memory per device (arguments, outputs, temporaries, peak);
* on an accelerator (or with ``--time`` on a CPU): ms/step, s/image for ``--steps`` steps,
  images/s, the device's peak memory, and the model FLOP utilisation (XLA FLOPs per second
  over the device's bf16 peak, ``--peak_tflops`` or a small table), next to the paper's
  100 s/image, the authors' loop on an H100 (24.3 s/image at B=1) and batched by hand
  (6.6 s/image at B=16). CPU timings are labelled as sanity figures, not performance numbers.

``--batch auto`` asks the batch planner (``solver.batch_size=0``) for the largest batch that
fits the device's memory (``--memory_budget_gib`` on a CPU). Simulate several devices on a CPU
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from sair_jax.core import batching, objective, solver
from sair_jax.nets import arcface, stylegan2
from sair_jax.pipeline.networks import random_params
from sair_jax.core.program_stats import GIB, ProgramStats

FLAGS = flags.FLAGS
flags.DEFINE_list("batch", ["1", "8", "16"], "batch sizes to measure ('auto': the planner's)")
flags.DEFINE_integer("resolution", 1024, "generator resolution (config-f widths)")
flags.DEFINE_integer("width_divisor", 1, "divide config-f's channel widths (small CPU runs)")
flags.DEFINE_integer("lq_size", 32, "LQ side (factor = resolution / lq_size)")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "synthesis compute dtype")
flags.DEFINE_list("upconv", ["separable"], "2x up-layer forms to measure (separable, folded)")
flags.DEFINE_bool("remat", False, "rematerialise synthesis blocks")
flags.DEFINE_enum("preset", "paper", ["paper", "official"], "objective terms")
flags.DEFINE_bool("histogram", False, "include the histogram term (on from the first step)")
flags.DEFINE_list("device_counts", [], "device counts to measure (default: all local devices)")
flags.DEFINE_integer("steps", 400, "steps per image, for the s/image column")
flags.DEFINE_integer("timed_steps", 20, "steps timed per configuration (one compiled chunk)")
flags.DEFINE_bool("time", False, "also time on a CPU (always timed on accelerators)")
flags.DEFINE_float("memory_budget_gib", 0.0, "memory per device for --batch auto (0: device's)")
flags.DEFINE_float("peak_tflops", 0.0, "device bf16 peak for the MFU column (0: from a table)")

CONFIG_F_CHANNELS = (512, 512, 512, 512, 512, 256, 128, 64, 32)
IRESNET50 = arcface.Arch(layers=(3, 4, 14, 3), widths=(64, 128, 256, 512), strides=(2, 2, 2, 2),
                         stem_width=64, embedding_size=512, depth=50)
# Dense bf16 peak TFLOP/s by device kind (vendor datasheets, SXM parts).
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "V100": 125.0}
ANCHORS = "paper 100 s/image (TITAN Xp); authors' loop on an H100: 24.3 (B=1), 6.6 (B=16)"


def make_spec(arch: stylegan2.Arch, upconv: str) -> objective.ObjectiveSpec:
  common = dict(g_arch=arch, arcface_arch=IRESNET50, factor=FLAGS.resolution // FLAGS.lq_size,
                compute_dtype=FLAGS.dtype, remat=FLAGS.remat, upconv=upconv,
                histogram_size=min(256, FLAGS.resolution))
  hist = (("histogram", 0.05),) if FLAGS.histogram else ()
  if FLAGS.preset == "paper":
    return objective.ObjectiveSpec(
        weights=(("fidelity", 1.0), ("identity", 1.0), ("prior", 0.001)) + hist,
        fidelity_norm="sum", **common)
  # The authors' script (the SPEC's 24.3 s anchor excludes the histogram term).
  return objective.ObjectiveSpec(
      weights=(("fidelity", 120.0), ("identity", 0.4), ("prior", 0.001), ("cross", 0.05)) + hist,
      fidelity_clamp=1e-4, noise="random", output="minmax", identity_variant="official",
      histogram_variant="official", **common)


def peak_tflops(device) -> float | None:
  if FLAGS.peak_tflops > 0:
    return FLAGS.peak_tflops
  return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device.device_kind), None)


def device_peak_gib(devices) -> float | None:
  peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in devices]
  return None if None in peaks else max(peaks) / GIB


def measure(sol: solver.Solver, b: int, timed: bool) -> dict:
  """XLA's per-step numbers for batch ``b`` and, if ``timed``, ms/step.

  A sharded program's counts and memory are per device (``b / n_devices`` images each).
  """
  one = ProgramStats.of(sol.compiled(b, 1))  # one step, no loop: XLA's counts are per step
  per_device = b / sol.n_devices
  row = {"batch": b, "gflop": one.flops / per_device / 1e9,
         "gb": one.bytes_accessed / per_device / 1e9,
         "args": one.argument_bytes / GIB, "outs": one.output_bytes / GIB,
         "temps": one.temp_bytes / GIB, "peak": one.peak_bytes / GIB, "flops_step": one.flops}
  if timed:
    arch = sol.spec.g_arch
    target = sol.shard(jax.tree_util.tree_map(
        lambda s: jnp.full(s.shape, 0.5, s.dtype), objective.target_shapes(sol.spec, b)))
    w0 = 0.1 * jax.random.normal(jax.random.PRNGKey(2), (b, arch.n_latent, arch.w_dim))
    state = sol.init(w0, np.arange(b))
    state, _ = sol.run_chunk(state, target, FLAGS.timed_steps)  # compile + warm up
    jax.block_until_ready(state.w)
    t0 = time.perf_counter()
    state, _ = sol.run_chunk(state, target, FLAGS.timed_steps)
    jax.block_until_ready(state.w)
    row["ms_step"] = (time.perf_counter() - t0) / FLAGS.timed_steps * 1e3
  return row


def main(argv):
  del argv
  n = int(np.log2(FLAGS.resolution)) - 1
  channels = tuple(max(8, c // FLAGS.width_divisor) for c in CONFIG_F_CHANNELS[:n])
  arch = stylegan2.Arch(FLAGS.resolution, 512, 8, channels)
  g_params, g_buffers = stylegan2.init_params(arch, jax.random.PRNGKey(0))
  a_params = random_params(arcface.param_shapes(IRESNET50), jax.random.PRNGKey(1))
  nets = {"g_params": g_params, "g_buffers": g_buffers, "arcface": a_params}
  dev = jax.devices()[0]
  on_cpu = dev.platform == "cpu"
  timed = FLAGS.time or not on_cpu
  counts = [int(c) for c in FLAGS.device_counts] or [jax.device_count()]
  tflops = peak_tflops(dev)
  print(f"device: {jax.device_count()} x {dev.platform} {dev.device_kind}; "
        f"{FLAGS.resolution}px config-f widths/{FLAGS.width_divisor} + IResNet-50; preset "
        f"{FLAGS.preset}{' + histogram' if FLAGS.histogram else ''}; {FLAGS.dtype}; "
        f"remat={FLAGS.remat}; XLA GFLOP of the synthesis convolutions alone: "
        f"{stylegan2.synthesis_conv_flops(arch) / 1e9:.1f} forward per image")
  print(f"anchors: {ANCHORS}")
  if on_cpu and timed:
    print("NOTE: CPU timings below are sanity figures, not performance numbers.")
  print("| upconv | devices | batch | GFLOP/image-step | GB accessed/image-step | args GiB | "
        "outputs GiB | temps GiB | peak GiB (XLA) | ms/step | s/image | images/s | "
        "device peak GiB | MFU |\n" + "|---" * 14 + "|")
  for upconv in FLAGS.upconv:
    spec = make_spec(arch, upconv)
    for count in counts:
      mesh = solver.batch_mesh(jax.devices()[:count])
      sol = solver.Solver(spec, nets, steps=FLAGS.steps, lr=0.1, mesh=mesh)
      for b_flag in FLAGS.batch:
        if b_flag == "auto":
          budget, _ = batching.memory_budget(FLAGS.memory_budget_gib)
          plan = batching.plan_batch(lambda s, r: sol.program_stats(s, 1).peak_bytes, budget,
                                     max_size=64 * count, n_devices=count, allow_remat=False)
          b, label = plan.size, f"auto={plan.size}"
        else:
          b = batching.round_up(int(b_flag), count)
          label = str(b)
        row = measure(sol, b, timed)
        cells = [upconv, str(count), label, f"{row['gflop']:.1f}", f"{row['gb']:.2f}",
                 f"{row['args']:.2f}", f"{row['outs']:.2f}", f"{row['temps']:.2f}",
                 f"{row['peak']:.2f}"]
        if "ms_step" in row:
          per_image = row["ms_step"] / 1e3 * FLAGS.steps / b
          peak = device_peak_gib(mesh.devices.flat)
          # per device: its share of the step's FLOPs over its own peak
          mfu = (row["flops_step"] / (row["ms_step"] / 1e3) / (tflops * 1e12)
                 if tflops and not on_cpu else None)
          cells += [f"{row['ms_step']:.1f}", f"{per_image:.2f}", f"{1 / per_image:.3f}",
                    "n/a" if peak is None else f"{peak:.1f}",
                    "n/a" if mfu is None else f"{mfu:.1%}"]
        else:
          cells += ["—"] * 5
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  app.run(main)
