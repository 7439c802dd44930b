"""agora for notebooks: ``agora.load_run(path)`` gives a run's log as polars DataFrames."""

from agora.engine import __version__
from agora.engine.frames import RunFrames, load_run

__all__ = ["RunFrames", "__version__", "load_run"]
