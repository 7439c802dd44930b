"""Agents: how a persona, memory and a world's view become a request, and an answer an action."""
