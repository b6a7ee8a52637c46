"""Flower-free core shared by the centres and the ministry: schema, encoding, model,
training and evaluation loops, metrics, privacy accounting, configuration."""
