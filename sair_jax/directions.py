"""``python -m sair_jax.directions``: import or fit expression directions.

The command only; the library is :mod:`sair_jax.face.directions`.
"""

from sair_jax.face.directions import entry

if __name__ == "__main__":
  entry()
