"""Policies: services beside the world that agents see and act on (message board, institutions)."""
