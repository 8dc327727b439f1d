"""ArcFace identity network: insightface arcface_torch's IResNet as a Flax module.

The network maps an aligned face [B, 112, 112, 3] (normalised by the caller, see
:func:`preprocess`) to raw identity features [B, D] (no L2 normalisation; SAIR compares them
by cosine). Layout, following arcface_torch's ``iresnet.py``::

    conv1 3x3 s1 -> bn1 -> prelu
    layer1..layer4: IBasicBlock x n_i, the first of each with stride 2 and a 1x1 projection
    bn2 -> (dropout: identity at inference) -> flatten -> fc -> features (BatchNorm1d)

    IBasicBlock: bn1 -> conv1 3x3 -> bn2 -> prelu -> conv2 3x3 stride s -> bn3, + shortcut
    (shortcut = downsample: conv 1x1 stride s -> BN, when the stride or width changes)

Parameter names follow the torch module names with '.' replaced by '_' (``layer2_0/bn3``,
``layer1_0/downsample_0``), so ``converters/arcface.py`` is a plain name table. The depth
(blocks per stage), widths and embedding size come from the checkpoint: :class:`Arch`, stored in
its ``meta.json``.

Usage::

    A = arcface.load("checkpoints/arcface-r50")
    feats = A.embed(images)                        # [B, 112, 112, 3] normalised -> [B, D]
    feats = A.embed_faces(faces, variant="official")  # [B, H, W, 3] in [0, 1] -> [B, D]
    arcface.apply(A.params, A.arch, images)        # the same, pure, for use inside jit
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sair_jax.io import checkpoint
from sair_jax.nets import layers
from sair_jax.nets.loaded import LoadedNetwork
from sair_jax.nets.layers import BatchNorm, PReLU, conv, interpolate

KIND = "arcface_iresnet"

# Standard insightface normalisation: [0, 1] -> [-1, 1].
STANDARD_MEAN, STANDARD_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# The SAIR authors' script normalises ArcFace's input with the ImageNet statistics instead.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# ... after cropping rows/cols 100:900 of a 1024 x 1024 image.
OFFICIAL_CROP = (100 / 1024, 900 / 1024)


class IBasicBlock(nn.Module):
  """arcface_torch's improved residual block (pre-activation BN, PReLU, strided second conv)."""
  planes: int
  stride: int
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):  # [B, H, W, Cin]
    out = BatchNorm(self.eps, name="bn1")(x)
    out = conv(self.planes, 3, 1, 1, name="conv1")(out)  # [B, H, W, P]
    out = BatchNorm(self.eps, name="bn2")(out)
    out = PReLU(name="prelu")(out)
    out = conv(self.planes, 3, self.stride, 1, name="conv2")(out)  # [B, H/s, W/s, P]
    out = BatchNorm(self.eps, name="bn3")(out)
    if self.stride != 1 or x.shape[-1] != self.planes:  # torch builds `downsample` exactly then
      x = conv(self.planes, 1, self.stride, 0, name="downsample_0")(x)
      x = BatchNorm(self.eps, name="downsample_1")(x)
    return out + x


class IResNet(nn.Module):
  """The IResNet backbone plus its embedding head (fc + BatchNorm1d ``features``)."""
  layers: Sequence[int]  # blocks per stage, e.g. (3, 4, 14, 3) for IResNet-50
  widths: Sequence[int]  # output channels per stage, e.g. (64, 128, 256, 512)
  stem_width: int = 64
  embedding_size: int = 512
  strides: Sequence[int] = (2, 2, 2, 2)
  eps: float = 1e-5  # BatchNorm2d eps (arcface_torch: 1e-5)
  features_eps: float = 1e-5  # BatchNorm1d eps of `features` (arcface_torch: 1e-5)

  @nn.compact
  def __call__(self, x):  # [B, S, S, 3], S = 112 for the official models
    x = conv(self.stem_width, 3, 1, 1, name="conv1")(x)  # [B, S, S, 64]
    x = BatchNorm(self.eps, name="bn1")(x)
    x = PReLU(name="prelu")(x)
    for i, (n, width, stride) in enumerate(zip(self.layers, self.widths, self.strides)):
      for j in range(n):
        x = IBasicBlock(width, stride if j == 0 else 1, self.eps, name=f"layer{i + 1}_{j}")(x)
    x = BatchNorm(self.eps, name="bn2")(x)  # [B, S/16, S/16, C], 7x7 for S = 112
    # Flattened in NHWC order (h, w, c); torch flattens (c, h, w): the converter permutes the
    # rows of the fc weight to match, so no transpose is needed here.
    x = x.reshape(x.shape[0], -1)  # [B, H*W*C]
    x = nn.Dense(self.embedding_size, name="fc")(x)  # [B, D]
    return BatchNorm(self.features_eps, name="features")(x)  # [B, D]


@dataclasses.dataclass(frozen=True)
class Arch:
  """The network's shape (hashable), read from the checkpoint by the converter, in meta.json."""
  layers: tuple[int, ...]  # IBasicBlocks per stage (3, 4, 14, 3 for IResNet-50)
  widths: tuple[int, ...]  # channels per stage
  strides: tuple[int, ...]  # stride of each stage's first block
  stem_width: int
  embedding_size: int
  input_size: int = 112  # side of the square input
  feature_map: int = 7  # side of the last stage's output (input_size / 16)
  bn_eps: float = 1e-5
  features_eps: float = 1e-5  # epsilon of the final BatchNorm1d
  depth: int | None = None  # 50 for IResNet-50, when the layers are a standard depth

  def to_meta(self) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_meta(cls, meta: dict) -> "Arch":
    """From a ``meta.json`` dict (a missing field raises KeyError naming it)."""
    ints = lambda v: tuple(int(x) for x in v)
    return cls(layers=ints(meta["layers"]), widths=ints(meta["widths"]),
               strides=ints(meta["strides"]), stem_width=int(meta["stem_width"]),
               embedding_size=int(meta["embedding_size"]), input_size=int(meta["input_size"]),
               feature_map=int(meta["feature_map"]), bn_eps=float(meta["bn_eps"]),
               features_eps=float(meta["features_eps"]),
               depth=None if meta.get("depth") is None else int(meta["depth"]))


def build(arch: Arch) -> IResNet:
  """The Flax module of an :class:`Arch`."""
  return IResNet(layers=arch.layers, widths=arch.widths, stem_width=arch.stem_width,
                 embedding_size=arch.embedding_size, strides=arch.strides, eps=arch.bn_eps,
                 features_eps=arch.features_eps)


def param_shapes(arch: Arch) -> Any:
  """Shape tree (tuples) of the parameters of ``arch``, without allocating them."""
  return layers.param_shapes(build(arch), arch.input_size)


def _check_input(arch: Arch, images) -> None:
  size = arch.input_size
  if images.ndim != 4 or tuple(images.shape[1:]) != (size, size, 3):
    raise ValueError(f"ArcFace expects images [B, {size}, {size}, 3], got {tuple(images.shape)}")


def apply(params: Any, arch: Arch, images):
  """Raw features [B, D] of normalised aligned faces [B, S, S, 3] (pure; use inside jit)."""
  _check_input(arch, images)
  return build(arch).apply({"params": params}, images)


def official_crop(size: int) -> tuple[int, int]:
  """The authors' crop window (rows = cols) for a square image of side ``size``: 100:900 at
  1024, scaled proportionally (and rounded) at other resolutions."""
  return round(OFFICIAL_CROP[0] * size), round(OFFICIAL_CROP[1] * size)


def preprocess(faces, variant: str = "standard", size: int = 112):
  """Turns faces [B, H, W, 3] in [0, 1] (any resolution) into ArcFace input [B, size, size, 3].

  * ``"standard"``: resize the whole image to ``size`` (bilinear, antialiased when shrinking)
    and map [0, 1] to [-1, 1] — for faces already aligned to the ArcFace template.
  * ``"official"``: the SAIR authors' variant for FFHQ-aligned faces: crop rows/cols 100:900
    of a 1024 image (proportionally at other sizes), torch-style bicubic resize with
    ``align_corners=True`` (a = -0.75, no antialiasing), ImageNet mean/std normalisation.

  Differentiable; the crop window and interpolation weights are static (from the shapes).
  """
  _, h, w, _ = faces.shape  # [B, H, W, 3]
  if variant == "standard":
    x = jax.image.resize(faces, (faces.shape[0], size, size, 3), "linear")
    mean, std = STANDARD_MEAN, STANDARD_STD
  elif variant == "official":
    r0, r1 = official_crop(h)
    c0, c1 = official_crop(w)
    x = interpolate(faces[:, r0:r1, c0:c1, :], (size, size), "bicubic", align_corners=True)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
  else:
    raise ValueError(f"unknown ArcFace preprocessing variant {variant!r} "
                     "(expected 'standard' or 'official')")
  return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)  # [B, size, size, 3]


class ArcFace(LoadedNetwork):
  """A loaded ArcFace: ``params`` (device arrays), its :class:`Arch` and jitted entry points."""

  def __init__(self, params: Any, arch: Arch):
    super().__init__(params, arch)
    self.module = build(arch)
    self._embed = jax.jit(self.apply_fn)
    self._embed_faces = jax.jit(self.apply_faces, static_argnames="variant")

  @property
  def embedding_size(self) -> int:
    return self.arch.embedding_size

  def apply_fn(self, params: Any, images):
    """Pure forward ``(params, images [B, S, S, 3]) -> [B, D]`` for use inside other jits."""
    return apply(params, self.arch, images)

  def apply_faces(self, params: Any, faces, variant: str = "standard"):
    """Pure ``(params, faces [B, H, W, 3] in [0, 1]) -> [B, D]`` with :func:`preprocess`."""
    return apply(params, self.arch, preprocess(faces, variant, self.arch.input_size))

  def embed(self, images):
    """Raw features [B, D] of normalised aligned faces [B, S, S, 3] (jitted)."""
    return self._embed(self.params, images)

  def embed_faces(self, faces, variant: str = "standard"):
    """Raw features [B, D] of faces [B, H, W, 3] in [0, 1], preprocessed by ``variant``."""
    return self._embed_faces(self.params, faces, variant=variant)


def load(dst: str) -> ArcFace:
  """Loads a checkpoint written by ``python -m converters.arcface`` (one-line CheckpointError)."""
  return ArcFace(*checkpoint.load_network(dst, KIND, Arch, param_shapes))

