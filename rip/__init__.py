"""Recursive inpainting experiments tracked with MLflow."""

__version__ = "0.1.0"
