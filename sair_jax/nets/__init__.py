"""Pretrained networks SAIR uses, as Flax modules with loaders for converted checkpoints."""
