"""Expression directions in W+ (paper §2, "Emotion semantics"): fit them, import them, load them.

* :mod:`.file`: the :class:`~.file.Directions` record and its ``.npz`` file.
* :mod:`.authors_npy`: importing the authors' per-expression ``.npy`` files.
* :mod:`.sampling`: latents drawn from a generator and labelled by an expression classifier.
* :mod:`.logistic`: one logistic regression per expression and W+ row; its normals.

The command is ``python -m sair_jax.directions`` (:mod:`sair_jax.directions`).
"""
