"""Numba kernels of pivotal: arrays in, arrays out; no I/O, no Ray, no pyarrow."""
