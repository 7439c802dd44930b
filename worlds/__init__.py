"""Worlds: one folder each (rules, observation, actions, prompts, offline behaviour, metrics)."""
