"""``python tests/fault_runner.py MODE FILE COUNT -- <sair_jax.main flags>``: the main command with
one fault injected into the project's file writer (:mod:`sair_jax.io.files`).

When the ``COUNT``-th file whose path ends with ``FILE`` is written (counting from 1):

* ``kill``: half its bytes reach the temporary file, then the process SIGKILLs itself (no
  handler, no clean-up: as a power cut or the OOM killer would);
* ``enospc``: the write fails with ``OSError(ENOSPC)``, as on a full disk.

Only the operating-system calls are replaced; the project's own error handling and clean-up run
unchanged. Linux only (the temporary's path is read from /proc/self/fd).
"""

import errno
import os
import signal
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from sair_jax.io import files  # noqa: E402


def _target(tmp: str) -> str:
  """The file a temporary ``DIR/.NAME.<random>.tmp`` of files.atomic_write will become."""
  name = os.path.basename(tmp)
  if not (name.startswith(".") and name.endswith(files.TEMP_SUFFIX)):
    return tmp
  return os.path.join(os.path.dirname(tmp), name[1:-len(files.TEMP_SUFFIX)].rsplit(".", 1)[0])


def _install(mode: str, suffix: str, count: int) -> None:
  seen = [0]

  class FaultyFile:
    def __init__(self, f, path):
      self._f, self._path = f, path

    def write(self, data):
      if _target(self._path).endswith(suffix):
        seen[0] += 1
        if seen[0] == count:
          if mode == "kill":
            self._f.write(data[:len(data) // 2])
            self._f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
          raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      return self._f.write(data)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return self._f.__exit__(*exc)

  def fdopen(fd, *args, **kwargs):
    path = os.readlink(f"/proc/self/fd/{fd}")
    return FaultyFile(os.fdopen(fd, *args, **kwargs), path)

  proxy = types.ModuleType("os")
  proxy.__dict__.update(os.__dict__)
  proxy.fdopen = fdopen
  files.os = proxy


if __name__ == "__main__":
  mode, suffix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
  assert sys.argv[4] == "--" and mode in ("kill", "enospc"), sys.argv
  _install(mode, suffix, count)
  sys.argv = [sys.argv[0]] + sys.argv[5:]
  from absl import app
  from sair_jax import main
  app.run(main.main, flags_parser=main.parse_flags)
