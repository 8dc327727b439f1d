"""Face semantics around the solver: landmarks, masks, alignment, expressions and directions; faces
found in ordinary photos and restored faces pasted back into them."""
