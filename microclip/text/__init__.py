"""Text side of the suite: description sets (load, validate, fetch, generate) and prototypes."""
