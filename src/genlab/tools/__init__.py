"""Maintenance scripts that build genlab's own assets (they may use every layer: data, models, training)."""
