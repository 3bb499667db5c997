"""Model interface, load_model registry, baseline and learned models."""
