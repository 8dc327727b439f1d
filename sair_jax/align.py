"""``python -m sair_jax.align``: FFHQ-align photos into reference faces.

The command only; the library is :mod:`sair_jax.face.align`.
"""

from sair_jax.face.align import entry

if __name__ == "__main__":
  entry()
