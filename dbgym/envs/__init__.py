"""Gymnasium environments and their registration."""
