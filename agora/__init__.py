"""agora for notebooks: ``agora.run(config)`` runs one, ``agora.load_run(path)`` gives its log
as polars DataFrames, ``agora.replay(path, tick)`` rebuilds its state at a tick.

The names a world author needs (``World``, ``WorldParts``, ``Seeds`` …) are here too.
"""

from agora.api import Run, arun, replay, run
from agora.engine import __version__
from agora.engine.config import ConfigError
from agora.engine.frames import RunFrames, load_run
from agora.engine.protocols import (
    AnswerField,
    OfflineBehaviour,
    Policy,
    World,
    WorldParts,
    WorldPrompts,
)
from agora.engine.record_kinds import DeclaresRecords, EmitsRecords
from agora.engine.records import LogRecord
from agora.engine.replay import Replayer, ReplayError
from agora.engine.runner import RunSummary
from agora.engine.seeding import Seeds

__all__: list[str] = [
    "AnswerField",
    "ConfigError",
    "DeclaresRecords",
    "EmitsRecords",
    "LogRecord",
    "OfflineBehaviour",
    "Policy",
    "ReplayError",
    "Replayer",
    "Run",
    "RunFrames",
    "RunSummary",
    "Seeds",
    "World",
    "WorldParts",
    "WorldPrompts",
    "__version__",
    "arun",
    "load_run",
    "replay",
    "run",
]
