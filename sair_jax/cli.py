"""What every command shares: absl flags and a ``main``, and user errors as one line.

A command module defines ``define_flags()`` and ``main(argv)`` and ends with
``if __name__ == "__main__": cli.run(define_flags, main)``. Inside ``main``, the work runs under
``with cli.user_errors():``, which prints a :class:`~sair_jax.errors.UserError` (and any other
exception types the command names, e.g. ``OSError``) as ``error: MESSAGE`` on stderr and exits
with status 1, the contract of :mod:`sair_jax.errors`; everything else keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, Sequence

from sair_jax.errors import UserError


@contextlib.contextmanager
def user_errors(*also: type[BaseException], prefix: str = "") -> Iterator[None]:
  """Turns a UserError (or one of ``also``) raised in the block into ``{prefix}error: {e}`` on
  stderr and ``SystemExit(1)``."""
  try:
    yield
  except (UserError, *also) as e:
    print(f"{prefix}error: {e}", file=sys.stderr)
    sys.exit(1)


def run(define_flags: Callable[[], None], main: Callable[[Sequence[str]], int | None]) -> None:
  """Defines the command's flags (only now, so that importing its module never clashes with
  another's) and runs ``main`` under absl (``--help``, flag errors, exit status)."""
  from absl import app
  define_flags()
  app.run(main)
