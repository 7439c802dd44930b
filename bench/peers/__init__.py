"""Peer frameworks for the side-by-side benchmarks, run from their own venv."""
