"""Experimental designs: data frames of conditions (:func:`crossed`, :func:`nested`)."""

from .generators import crossed, nested, unit_labels

__all__ = ["crossed", "nested", "unit_labels"]
