"""Observation and action spaces: strict gymnasium spaces and their encoders."""
