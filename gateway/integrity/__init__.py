"""Integrity: the box's signing key, signed hash-chained journals, and each camera's seal chain."""
