"""The errors a user can fix, as distinct from bugs.

* :class:`UserError`: a problem the user can fix (a missing checkpoint, a bad folder, a bad
  config value, a damaged file). Its message is one line (or a short list) naming the file
  and the problem. Commands print exactly these as ``error: ...`` and exit 1.
* :class:`InputError`: a :class:`UserError` that concerns ONE input image (unreadable, wrong
  size, no reference, no expression). A run records it for that image and goes on with the
  others; every other error ends the run.

Anything else (``ValueError``, ``KeyError``, ...) raised while running is a bug and keeps its
traceback.
"""


class UserError(Exception):
  """A problem the user can fix; the message names the file or setting and the problem."""


class InputError(UserError):
  """A problem with one input image; the run records it and goes on with the others."""


class ConfigError(UserError):
  """A config value (or a missing ``--config``) the run cannot work with."""
