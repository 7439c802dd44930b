"""Inference: transports (offline, later HTTP) and the layers around them."""
