"""Face semantics around the solver: landmarks, masks, alignment, expressions and directions."""
