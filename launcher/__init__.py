"""launch: one YAML job spec, any GPU provider."""

__version__ = "0.1.0"
