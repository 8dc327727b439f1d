"""Batch planning: auto batch from compiled memory, padding buckets, out-of-memory retries."""

import jax
import pytest

from sair_jax.core import batching

GIB = batching.GIB


def test_buckets_and_candidates():
  assert [batching.bucket(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
  assert [batching.bucket(n, 2) for n in (1, 2, 3, 5)] == [2, 2, 4, 8]
  assert batching.candidates(8) == [1, 2, 4, 8]
  assert batching.candidates(6) == [1, 2, 4, 6]
  assert batching.candidates(6, 2) == [2, 4, 6]
  assert batching.candidates(1) == [1]
  assert batching.round_up(5, 4) == 8 and batching.round_up(0, 2) == 2


def _linear(base, per_image, remat_per_image=None, calls=None):
  """A fake compiled-memory model: base + per_image * size (remat: a smaller slope)."""
  def peak(size, remat):
    if calls is not None:
      calls.append((size, remat))
    slope = remat_per_image if remat else per_image
    return int(base + slope * size)
  return peak


@pytest.mark.parametrize("budget_gib,want", [(100, 32), (10, 16), (5.5, 8), (2.4, 2), (1.2, 1)])
def test_plan_takes_the_largest_batch_that_fits(budget_gib, want):
  calls = []
  plan = batching.plan_batch(_linear(0.5 * GIB, 0.5 * GIB, calls=calls), int(budget_gib * GIB),
                             max_size=32, allow_remat=False)
  assert plan.size == want and not plan.remat
  assert plan.peak_bytes <= batching.SAFETY * budget_gib * GIB
  bigger = [s for s in batching.candidates(32) if s > want]
  if bigger:  # the next candidate really does not fit
    assert 0.5 * GIB + 0.5 * GIB * bigger[0] > batching.SAFETY * budget_gib * GIB
  assert len(calls) <= 4  # extrapolated, not one compilation per candidate
  assert [(s, r) for s, r, _ in plan.probes] == calls


def test_plan_uses_remat_only_when_it_doubles_the_batch():
  budget = 10 * GIB
  # remat halves the per-image memory: 8 -> 16 images fit; taken.
  plan = batching.plan_batch(_linear(0.5 * GIB, 1.0 * GIB, 0.5 * GIB), budget, max_size=32)
  assert (plan.size, plan.remat) == (16, True)
  # remat saves a little: same bucket; not taken (it costs a forward pass per step).
  plan = batching.plan_batch(_linear(0.5 * GIB, 1.0 * GIB, 0.9 * GIB), budget, max_size=32)
  assert (plan.size, plan.remat) == (8, False)
  # everything fits without remat: remat is never compiled.
  calls = []
  plan = batching.plan_batch(_linear(0.1 * GIB, 0.01 * GIB, 0.005 * GIB, calls), budget,
                             max_size=8)
  assert (plan.size, plan.remat) == (8, False) and all(not r for _, r in calls)
  # solver.remat=True: plan with remat only.
  plan = batching.plan_batch(_linear(0.5 * GIB, 1.0 * GIB, 0.5 * GIB), budget, max_size=32,
                             remat_only=True)
  assert plan.remat and plan.size == 16


def test_plan_refuses_in_one_line_when_nothing_fits():
  with pytest.raises(batching.DoesNotFit) as err:
    batching.plan_batch(_linear(3 * GIB, 1 * GIB, 0.5 * GIB), 2 * GIB, max_size=8)
  msg = str(err.value)
  assert "\n" not in msg and "GiB" in msg and "bfloat16" in msg


def test_choose_size_pads_to_a_bucket_or_reuses_a_compiled_size_by_measurement():
  assert batching.choose_size(8, 8) == 8
  assert batching.choose_size(3, 8) == 4  # no measurement yet: the smallest bucket
  assert batching.choose_size(1, 8, n_devices=2) == 2  # as far as the devices require
  # compiling costs more than the padded work: reuse the compiled full batch
  assert batching.choose_size(3, 8, compiled=[8], seconds_per_image_step=0.001,
                              compile_seconds=60.0, steps=400) == 8
  # padding costs more than compiling: a new bucket
  assert batching.choose_size(3, 8, compiled=[8], seconds_per_image_step=0.1,
                              compile_seconds=5.0, steps=400) == 4
  # an already compiled bucket is free
  assert batching.choose_size(3, 8, compiled=[8, 4], seconds_per_image_step=0.001,
                              compile_seconds=60.0, steps=400) == 4


def test_out_of_memory_detection_and_halving():
  assert batching.is_out_of_memory(jax.errors.JaxRuntimeError(
      "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 3.2GiB"))
  assert not batching.is_out_of_memory(ValueError("shapes do not match"))
  assert batching.halve(8) == 4 and batching.halve(6) == 4 and batching.halve(3) == 2
  assert batching.halve(1) is None
  assert batching.halve(8, 2) == 4 and batching.halve(2, 2) is None


def test_memory_budget_from_config_or_host():
  assert batching.memory_budget(1.5)[0] == int(1.5 * GIB)
  budget, source = batching.memory_budget(0.0)
  assert budget > 0 and isinstance(source, str)


# ------------------------------------------------------------------------------------------
# With the real solver and the run loop (smoke networks, CPU)
# ------------------------------------------------------------------------------------------


def _smoke_config(tmp_path, **solver):
  from sair_jax.configs import smoke
  config = smoke.get_config()
  config.output = str(tmp_path / "out")
  config.solver.steps, config.solver.chunk = 4, 2
  config.projection.steps = 2
  config.loss.histogram_start, config.loss.mask_every = 2, 2
  for k, v in solver.items():
    config.solver[k] = v
  return config


def test_auto_batch_fits_a_small_cpu_budget(tmp_path):
  """batch_size=0 with a budget between the compiled memory of 2 images and the planner's
  linear estimate for 3 (from 1 and 2): 2 are chosen.

  The plan is the run's own (engine.plan_batch on the run's context), measured on the programs the
  run would compile; restoring with a planned size is the loop's ordinary path (every other
  end-to-end test), so nothing is restored here. With solver.remat=True only rematerialised
  programs are probed (the choice between the two is tested above with a memory model), so
  the test compiles two small programs, those the planner probes.
  """
  from sair_jax.pipeline import engine, outputs, stages
  from sair_jax.pipeline.networks import untrained_networks
  config = _smoke_config(tmp_path, batch_size=0, remat=True)
  ctx = stages.Context(config, untrained_networks(config), outputs.RunFolder(config.output))
  chunk = engine._first_chunk(ctx)  # pylint: disable=protected-access
  peaks = {b: ctx.solver_for(True).program_stats(b, chunk).peak_bytes for b in (1, 2)}
  assert peaks[2] > peaks[1] > 0
  three = 2 * peaks[2] - peaks[1]  # the planner's extrapolation
  config.solver.memory_budget_gib = (peaks[2] + three) / 2 / batching.SAFETY / GIB
  size, plan = engine.plan_batch(ctx, 3)
  assert size == 2 and (plan["size"], plan["remat"]) == (2, True)
  assert plan["peak_gib"] == round(peaks[2] / GIB, 3) and plan["budget"].startswith("solver.")
  assert all(p["remat"] for p in plan["probes"]) and False not in ctx._solvers  # pylint: disable=protected-access
  assert ctx.solver_for(True).n_compiled == len(plan["probes"])  # the probes: its own programs
  # the run goes on with the planned solver; the context it planned on is left as it was
  off = ctx.with_remat(False)
  assert off.solver is ctx.solver_for(False) and off.with_remat(True).solver is ctx.solver
  assert ctx.spec.remat and not off.spec.remat


def test_out_of_memory_halves_the_batch_and_loses_nothing(tmp_path, monkeypatch, capsys):
  from sair_jax.core import solver
  from sair_jax.pipeline import restore
  original = solver.Solver.run_chunk
  seen = []

  def run_chunk(self, state, target, n):
    if "histogram" not in dict(self.spec.weights):  # the reference projection: not this test's
      return original(self, state, target, n)
    seen.append(state.w.shape[0])
    if state.w.shape[0] > 2:
      raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 9.9GiB")
    return original(self, state, target, n)

  monkeypatch.setattr(solver.Solver, "run_chunk", run_chunk)
  config = _smoke_config(tmp_path, batch_size=4)
  manifest = restore.restore(config)
  assert sorted(manifest["finished"]) == ["face0", "face1", "face2"] and not manifest["failures"]
  (retry,) = manifest["lq_sizes"][str(config.data.lq_size)]["oom_retries"]
  assert (retry["batch"], retry["retry_batch"]) == (4, 2)
  assert sorted(retry["images"]) == ["face0", "face1", "face2"]
  assert seen[0] == 4 and max(seen[1:]) <= 2
  assert "out of device memory at batch 4" in capsys.readouterr().err
  for i in range(3):
    assert (tmp_path / "out" / "restored" / f"face{i}.png").exists()
