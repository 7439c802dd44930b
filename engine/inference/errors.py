"""Why a request got no answer."""

from __future__ import annotations


class InferenceError(Exception):
    """No answer could be had for a request.

    ``retryable`` says whether trying again may help (a 429 or a reset) or not (a 401).
    """

    def __init__(self, reason: str, *, retryable: bool, requests: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.requests = requests
