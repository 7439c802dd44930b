"""Analyses of run logs, world-agnostic: statistics for comparing conditions and the
grounded-theory coding of agents' reasoning.

- ``stats``: Wilson intervals, two-proportion comparisons, a cluster-robust logistic test,
  Cohen's kappa (numpy only).
- ``codebook``: a codebook read from TOML, its rule-based coder, axial and selective coding.
- ``judge``: the LLM judge as a coder, through any engine client.
- ``coding``: the pipeline from a frame of reasonings to per-group frequencies and agreement.

Modules are imported by name, not re-exported here, so reading stats does not load the
inference stack.
"""
