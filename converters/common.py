"""What every converter shares: strict consumption of source tensors and a one-line-error CLI."""

from __future__ import annotations

import sys
from typing import Callable, Mapping

import numpy as np

from sair_jax.io.torch_reader import CheckpointFormatError, load_torch_file
from sair_jax.errors import UserError


class ConversionError(UserError):
  """The source file is readable but does not hold the expected network. One line."""


class TensorTable:
  """A source state dict that hands out each tensor once and checks that all were used.

  Converters call :meth:`take` for every parameter of the target model (with the shape they
  expect) and :meth:`finish` at the end, so a converted tree can neither be missing a parameter
  nor silently drop one from the source.
  """

  def __init__(self, state: Mapping[str, np.ndarray], source: str, ignore: Callable[[str], bool] = None):
    self.state = dict(state)
    self.source = source
    self.used: set[str] = set()
    self.ignore = ignore or (lambda key: False)

  def has(self, key: str) -> bool:
    return key in self.state

  def take(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if key not in self.state:
      raise ConversionError(f"{self.source}: tensor '{key}' is missing")
    value = np.asarray(self.state[key])
    if shape is not None and tuple(value.shape) != tuple(shape):
      raise ConversionError(
          f"{self.source}: tensor '{key}' has shape {tuple(value.shape)}, expected {tuple(shape)}")
    self.used.add(key)
    return value.astype(np.float32) if value.dtype.kind == "f" else value

  def finish(self) -> None:
    left = sorted(k for k in self.state if k not in self.used and not self.ignore(k))
    if left:
      more = f" (+{len(left) - 5} more)" if len(left) > 5 else ""
      raise ConversionError(
          f"{self.source}: {len(left)} tensors were not used by the conversion: {left[:5]}{more}")


def unwrap_state_dict(obj, source: str, what: str, required: tuple[str, ...]) -> dict:
  """The state dict inside a loaded torch file: the object itself or its 'state_dict', with a
  DataParallel 'module.' prefix removed; refuses one without the ``required`` keys."""
  if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
    obj = obj["state_dict"]
  if not isinstance(obj, Mapping):
    raise ConversionError(f"{source}: not an {what} state dict (holds a {type(obj).__name__})")
  state = dict(obj)
  if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
    state = {k[len("module."):]: v for k, v in state.items()}
  if not all(k in state for k in required):
    raise ConversionError(f"{source}: not an {what} state dict (no "
                          + " / ".join(f"'{k}'" for k in required)
                          + f"; found keys like {sorted(map(str, state))[:3]})")
  return state


def read_source(path: str) -> object:
  """Reads a torch file for conversion (errors are one-line and name the file)."""
  return load_torch_file(path)


def run_cli(convert: Callable[[], None]) -> None:
  """Runs ``convert``; any expected failure becomes ``error: <one line>`` and exit status 1."""
  from absl import logging

  from sair_jax.io.checkpoint import CheckpointError
  logging.set_verbosity(logging.WARNING)  # orbax logs every save step at INFO
  try:
    convert()
  except (FileNotFoundError, IsADirectoryError, PermissionError, CheckpointFormatError,
          ConversionError, CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def convert_torch_file(convert: Callable, src: str, dst: str, kind: str) -> dict:
  """Reads the torch file ``src``, ``convert(obj, src) -> (params, meta)``, writes ``dst``."""
  from sair_jax.io import checkpoint

  params, meta = convert(read_source(src), src)
  checkpoint.save(dst, params, meta, kind)
  return meta


def torch_file_converter(convert: Callable, kind: str, describe: Callable[[dict], str]):
  """The two public entry points of a converter of one torch file, ``(convert_file, cli)``:
  ``convert_file(src, dst) -> meta`` writes the checkpoint, ``cli(src, dst)`` does the same with
  one-line errors and prints ``converted <describe(meta)> -> dst``."""
  def convert_file(src: str, dst: str) -> dict:
    return convert_torch_file(convert, src, dst, kind)

  def cli(src: str, dst: str) -> None:
    run_cli(lambda: print(f"converted {describe(convert_file(src, dst))} -> {dst}"))

  return convert_file, cli


def src_dst_program(cli: Callable[[str, str], None], src_help: str) -> None:
  """Runs ``cli(--src, --dst)`` as an absl program (flags defined only when run as one)."""
  from absl import app, flags

  flags.DEFINE_string("src", None, src_help)
  flags.DEFINE_string("dst", None, "output checkpoint directory")
  flags.mark_flags_as_required(["src", "dst"])
  app.run(lambda argv: cli(flags.FLAGS.src, flags.FLAGS.dst))
