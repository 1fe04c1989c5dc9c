"""Saving and loading models, image grids, run folders and reports."""
from .serialize import load, save_model

__all__ = ["load", "save_model"]
