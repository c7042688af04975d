"""pivotal's engine: scenario files in, forecast tables out (plain Python around the kernels)."""

__version__ = "0.1.0"
