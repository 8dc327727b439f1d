"""What XLA says about a compiled program: arithmetic, memory traffic and memory footprint.

These numbers come from the compiler, not from a run, so they are the same on any machine that
compiles the same program for the same backend, a CPU included: the benchmark prints them, and
the batch planner sizes batches from them before anything runs.
"""

from __future__ import annotations

import dataclasses

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class ProgramStats:
  """Cost and memory of one compiled XLA program (per device for a sharded program).

  Attributes:
    flops: floating-point operations XLA counts (2 per multiply-add; zero-padding taps of a
      convolution are not counted).
    bytes_accessed: bytes read and written by all operations of the optimised program.
    argument_bytes, output_bytes, temp_bytes: buffers of the inputs, outputs and scratch.
    alias_bytes: output bytes that reuse donated input buffers (counted once).
    code_bytes: generated code.
  """
  flops: float
  bytes_accessed: float
  argument_bytes: int
  output_bytes: int
  temp_bytes: int
  alias_bytes: int
  code_bytes: int

  @property
  def peak_bytes(self) -> int:
    """Device memory the program needs while it runs: inputs, outputs, scratch and code."""
    return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
            + self.code_bytes)

  @classmethod
  def of(cls, compiled) -> "ProgramStats":
    """Reads a ``jax.stages.Compiled`` (``jax.jit(f).lower(...).compile()``)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per device program
      cost = cost[0] if cost else {}
    cost = cost or {}
    mem = compiled.memory_analysis()
    get = lambda name: int(getattr(mem, name, 0) or 0) if mem is not None else 0
    return cls(flops=float(cost.get("flops", 0.0)),
               bytes_accessed=float(cost.get("bytes accessed", 0.0)),
               argument_bytes=get("argument_size_in_bytes"),
               output_bytes=get("output_size_in_bytes"),
               temp_bytes=get("temp_size_in_bytes"),
               alias_bytes=get("alias_size_in_bytes"),
               code_bytes=get("generated_code_size_in_bytes"))

  def summary(self) -> dict:
    """Plain numbers for logs and manifests (GFLOP, GB, GiB)."""
    return {"gflop": round(self.flops / 1e9, 3), "gb_accessed": round(self.bytes_accessed / 1e9, 3),
            "arguments_gib": round(self.argument_bytes / GIB, 3),
            "outputs_gib": round(self.output_bytes / GIB, 3),
            "temporaries_gib": round(self.temp_bytes / GIB, 3),
            "peak_gib": round(self.peak_bytes / GIB, 3)}
