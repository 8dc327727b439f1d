"""sair_jax: SAIR face restoration with a one-shot reference, in JAX/Flax."""

__version__ = "0.1.0"
