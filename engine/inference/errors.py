"""Why a request got no answer."""

from __future__ import annotations


class InferenceError(Exception):
    """No answer could be had for a request.

    ``retryable`` says whether trying again may help (a 429, a 503, a reset) or not (a 401, a
    prompt too long); ``retry_after`` is the server's own advice in seconds, when it gave one.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        requests: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.requests = requests
        self.retry_after = retry_after
