"""Former home of the expression directions, kept so that old imports keep working: the library
is :mod:`sair_jax.expression_directions`, the command :mod:`sair_jax.directions`."""

from sair_jax.expression_directions.authors_npy import expression_of_filename, import_npy
from sair_jax.expression_directions.file import (FORMAT_VERSION, Directions, DirectionsError,
                                                 UnavailableDirection, load_directions,
                                                 save_directions)
from sair_jax.expression_directions.logistic import (FitResult, fit_directions, fit_linear,
                                                     membership)
from sair_jax.expression_directions.sampling import collect, generator_sampler
from sair_jax.face.expression import EXPRESSIONS
