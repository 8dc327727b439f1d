"""The numerical core: the objective and its terms, the degradation operator, the solver."""
