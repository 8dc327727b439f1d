"""The run's three stages called one by one, in process, on the smoke networks."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from sair_jax.configs import smoke
from sair_jax.errors import ConfigError
from sair_jax.io.images import write_image
from sair_jax.pipeline import inputs, outputs, stages
from sair_jax.pipeline.networks import untrained_networks
import known_answer


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
  config = smoke.get_config()
  config.output = str(tmp_path_factory.mktemp("stages") / "out")
  config.solver.steps, config.solver.chunk = 4, 2
  config.projection.steps = 2
  config.loss.histogram_start, config.loss.mask_every = 2, 2
  nets = untrained_networks(config)
  lq, refs = known_answer.smoke_inputs(tmp_path_factory.mktemp("stages_data"))
  config.data.lq, config.data.references = str(lq), str(refs)
  return stages.Context(config, nets, outputs.RunFolder(config.output))


def test_items_are_frozen(ctx):
  items, failures = inputs.discover(ctx.config)
  assert [it.name for it in items] == ["face0", "face1", "face2"] and not failures
  with pytest.raises(dataclasses.FrozenInstanceError):
    items[0].expression = "happy"


def test_prepare_solve_finish(ctx, tmp_path):
  items, _ = inputs.discover(ctx.config)
  wrong = tmp_path / "wrong.png"
  write_image(wrong, np.zeros((20, 20, 3)))
  bad = dataclasses.replace(items[1], name="wrong", lq=str(wrong))
  rows, failures = stages.prepare(ctx, [items[0], bad, items[2]])
  assert [r.item.name for r in rows] == ["face0", "face2"]
  assert [f.name for f in failures] == ["wrong"] and "20x20" in failures[0].reason
  assert rows[0].reference.method == "projection" and rows[0].lq.shape == (8, 8, 3)

  lines = []
  # 4 slots, 2 images: both finish together, in one result
  results = list(stages.solve(ctx, [rows], 4,
                              on_chunk=lambda line, active: lines.append((line, active))))
  assert len(results) == 1
  result = results[0]
  assert result.w_out.shape[0] == 2 and result.restored.shape[0] == 2
  assert result.histories[0]["total"].shape == (4,) and not result.bad.any()
  assert result.steps.tolist() == [4, 4]
  chunk, steps = ctx.config.solver.chunk, ctx.config.solver.steps
  assert [active for _, active in lines] == [[("face0", chunk * (i + 1)), ("face2", chunk * (i + 1))]
                                             for i in range(len(lines))]
  assert lines[-1][0].startswith(f"step {steps}/{steps}")
  # solve wrote nothing
  assert not any(os.scandir(os.path.join(ctx.folder.root, "restored")))

  outcomes = stages.finish(ctx, result)
  assert [(o.name, o.finished) for o in outcomes] == [("face0", True), ("face2", True)]
  assert ctx.folder.done("face0") and ctx.folder.done("face2") and not ctx.folder.done("face1")
  np.testing.assert_allclose(np.load(os.path.join(ctx.folder.root, "latents", "face2.npy")),
                             result.w_out[1])
  assert not os.path.exists(ctx.folder.manifest_path)  # only the run loop writes it

  # A non-finite image is reported, not written.
  bad_result = dataclasses.replace(result, bad=np.asarray([True, False]))
  os.remove(os.path.join(ctx.folder.root, "restored", "face0.png"))
  outcomes = stages.finish(ctx, bad_result)
  assert not outcomes[0].finished and "non-finite" in outcomes[0].reason
  assert not ctx.folder.done("face0")


def test_context_refuses_an_lq_size_that_does_not_divide(ctx):
  config = ctx.config.copy_and_resolve_references()
  config.data.lq_size = 24
  with pytest.raises(ConfigError, match="lq_size=24"):
    stages.Context(config, ctx.nets, ctx.folder, mesh=ctx.mesh)


def test_the_report_says_which_expression_the_restored_face_shows(ctx, monkeypatch):
  """With an expression classifier loaded, an image asked for one expression whose restored
  face the classifier reads as another is flagged; an image asked for none is not classified."""
  from sair_jax.face.expression import EXPRESSIONS, infer_expression
  from sair_jax.nets import expression
  arch = expression.Arch(input_size=16, in_channels=1, stem=(4,), stem_kernel=3, blocks=(8,),
                         separable_per_block=1, block_kernel=3, depth_multiplier=1,
                         pool_size=3, head_kernel=3, num_classes=7, eps=1e-3)
  classifier = expression.ExpressionClassifier(
      expression.init_params(arch, jax.random.PRNGKey(7)), arch, EXPRESSIONS)
  items, _ = inputs.discover(ctx.config)
  rows, _ = stages.prepare(ctx, items[:2])
  rows = [dataclasses.replace(rows[0], item=dataclasses.replace(rows[0].item, expression=None)),
          rows[1]]
  result = next(stages.solve(ctx, [rows], 2))
  seen = infer_expression(result.restored[1:], classifier,
                          upsample_to=result.restored.shape[1]).labels[0]
  asked = next(e for e in EXPRESSIONS if e != seen)
  rows[1] = dataclasses.replace(rows[1], item=dataclasses.replace(rows[1].item, expression=asked))
  result = dataclasses.replace(result, rows=tuple(rows))
  monkeypatch.setattr(ctx.nets, "expression", classifier)
  stages.finish(ctx, result)
  reports = []
  for r in rows:
    with open(os.path.join(ctx.folder.root, "reports", f"{r.item.name}.json")) as f:
      reports.append(json.load(f))
  assert reports[0]["expression_seen"] is None and "expression_mismatch" not in reports[0]["flags"]
  assert reports[1]["expression_seen"] == seen and reports[1]["expression_requested"] == asked
  assert "expression_mismatch" in reports[1]["flags"]


def test_reference_projection_builds_its_solver_once(ctx):
  """Every batch of references projected in a run reuses one solver and its compiled programs
  (a new solver per batch traced and compiled the whole step again)."""
  refs = ctx.references
  faces = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
  first = refs._project(faces)  # pylint: disable=protected-access
  (sol, _), = refs._projectors.values()  # pylint: disable=protected-access
  compiled = sol.n_compiled
  again = refs._project(faces)  # pylint: disable=protected-access
  (same, _), = refs._projectors.values()  # pylint: disable=protected-access
  assert same is sol and sol.n_compiled == compiled
  g = ctx.nets.g
  assert first.shape == (2, g.n_latent, g.w_dim)
  np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)
