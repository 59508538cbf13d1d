"""Experiments built on the library: benchmark runners, the MMoE paper's synthetic
experiment, and their charts. The core never imports this package."""
