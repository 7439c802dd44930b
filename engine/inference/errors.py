"""Why a request got no answer."""

from __future__ import annotations

# HTTP statuses worth asking again: the server may answer next time.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# The server says it has more than it can take: its endpoint's limit comes down.
OVERLOAD_STATUS = frozenset({429, 503})
# More tokens than any model's context: a usage report past this is garbage, not a bill.
MOST_TOKENS = 10_000_000


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
