"""Every random number of a run flows from its one seed through named, independent streams.

A stream is keyed by a name and integers (``seeds.rng("activation", tick)``), so adding a draw
in one place never shifts another stream, and the offline answer for (agent, tick, attempt)
is the same whatever order answers complete in.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _name_key(name: str) -> int:
    # A stable hash: Python's hash() is salted per process.
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class Seeds:
    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError("seed must be a non-negative integer")
        self.seed = seed

    def sequence(self, name: str, *keys: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(_name_key(name), *keys))

    def rng(self, name: str, *keys: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(self.sequence(name, *keys)))

    def integer(self, name: str, *keys: int) -> int:
        """A 31-bit integer, e.g. the sampling seed sent to a model server.

        One per request, so it is a keyed hash rather than a SeedSequence (a tenth of the cost;
        a run asks for one per decision).
        """
        text = f"{self.seed}|{name}|{keys}".encode()
        digest = hashlib.blake2b(text, digest_size=4, person=b"agora-int").digest()
        return int.from_bytes(digest, "little") >> 1
