"""A restoration run: inputs, networks, references, the stages of a batch, outputs and reports."""
