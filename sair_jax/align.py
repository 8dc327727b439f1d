"""``python -m sair_jax.align``: FFHQ-align photos into reference faces.

    python -m sair_jax.align --src photos/ --dst aligned/ [--size 1024]

Every photo's largest face is aligned (:func:`sair_jax.face.align.align_dir`); a photo without a
detectable face is reported and skipped; the exit status is 1 when any photo failed.
"""

import sys

from sair_jax import cli
from sair_jax.face.align import align_dir


def main(argv):
  del argv
  from absl import flags
  from sair_jax.face.landmarks import LandmarkDetector
  f = flags.FLAGS
  with cli.user_errors(OSError):
    detector = LandmarkDetector(detect_size=f.detect_size, upsample=f.upsample)
    aligned, skipped, failed = align_dir(f.src, f.dst, f.size, detector)
  print(f"{aligned} aligned, {skipped} without a face, {failed} failed")
  sys.exit(1 if failed else 0)


def define_flags() -> None:
  """The command's flags (absl)."""
  from absl import flags
  flags.DEFINE_string("src", None, "directory of photos")
  flags.DEFINE_string("dst", None, "output directory (PNG, same file stems)")
  flags.DEFINE_integer("size", 1024, "output side (FFHQ: 1024)")
  flags.DEFINE_integer("detect_size", 1024, "face detection runs on a copy at most this large")
  flags.DEFINE_integer("upsample", 0, "dlib detector upsampling passes (finds smaller faces)")
  flags.mark_flags_as_required(["src", "dst"])


if __name__ == "__main__":
  cli.run(define_flags, main)
