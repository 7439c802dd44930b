"""agora's engine: protocols, scheduler, inference, log, config and CLI. It knows no world."""

__version__ = "0.1.0"
