"""Keep an API key out of error messages, also when a server echoes only part of it.

Providers echo keys back in their error bodies, whole or in part ("Incorrect API key provided:
sk-abc123de****"). Any run of at least ``MIN_ECHO`` characters of the key is replaced, wherever
it starts in the key, so neither its head nor its tail survives. Shorter runs are left: eight
characters of a key are too few to use, and a shorter rule would redact ordinary words.
"""

from __future__ import annotations

MIN_ECHO = 8
REDACTED = "[redacted]"
# Error bodies are cut to a short snippet after redaction; nothing past this is ever shown.
_EXAMINED = 4096


def redact(text: str, secret: str | None) -> str:
    if not secret:
        return text
    text = text.replace(secret, REDACTED)
    if len(secret) < MIN_ECHO:
        return text
    grams = {secret[i : i + MIN_ECHO] for i in range(len(secret) - MIN_ECHO + 1)}
    pieces: list[str] = []
    start = 0
    index = 0
    while index <= len(text) - MIN_ECHO:
        if text[index : index + MIN_ECHO] not in grams:
            index += 1
            continue
        end = index + MIN_ECHO
        # Extend the match while the text goes on as some run of the key does.
        while end < len(text) and text[end - MIN_ECHO + 1 : end + 1] in grams:
            end += 1
        pieces.append(text[start:index])
        pieces.append(REDACTED)
        start = index = end
    pieces.append(text[start:])
    return "".join(pieces)


def error_snippet(payload: bytes, secret: str | None, limit: int = 200) -> str:
    """A server's error body as a short, key-free line."""
    text = payload[:_EXAMINED].decode("utf-8", "replace")
    return " ".join(redact(text, secret).split())[:limit].strip()
