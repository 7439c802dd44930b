"""A grounded-theory codebook and the rule-based coder that applies it.

The three steps of grounded theory map onto this module as follows:
- open coding: a coder maps one reasoning text to a set of codes (``CodebookCoder`` by rules
  here; ``engine.analysis.judge.JudgeCoder`` by an LLM judge);
- axial coding: codes are grouped into categories (``Codebook.categories_of``);
- selective coding: the core category of a group of reasonings is the category carried by the
  largest share of them, ties broken by the codebook's order of categories
  (``core_category``).

A codebook is a TOML file::

    name = "my_world"
    description = "..."

    [[categories]]            # their order breaks ties in selective coding
    name = "self_interest"
    description = "..."

    [[codes]]
    name = "own_utility"
    category = "self_interest"
    description = "what the code means, and the rule that assigns it"
    phrases = ["my own comfort"]       # literal, case-insensitive, whole words
    patterns = ['\\bfor me\\b']          # Python regular expressions, case-insensitive

A code with neither phrases nor patterns is left to the judge; the rule coder never assigns it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

from agora.engine.records import InvalidAttempt


class CodebookError(ValueError):
    """A codebook that cannot be used, phrased as one line naming the file and the entry."""


class Category(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    description: str
    title: str = ""


class Code(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    category: str
    description: str
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


class Codebook(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    categories: tuple[Category, ...]
    codes: tuple[Code, ...]
    description: str = ""
    version: int = 1

    def __post_init__(self) -> None:
        categories = [c.name for c in self.categories]
        codes = [c.name for c in self.codes]
        for kind, names in (("category", categories), ("code", codes)):
            seen: set[str] = set()
            for name in names:
                if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                    raise CodebookError(f"{kind} {name!r}: names are snake_case (a-z, 0-9, _)")
                if name in seen:
                    raise CodebookError(f"{kind} {name!r} is defined twice")
                seen.add(name)
        if not codes:
            raise CodebookError("the codebook defines no codes")
        for code in self.codes:
            if code.category not in categories:
                raise CodebookError(
                    f"code {code.name!r}: category {code.category!r} is not defined "
                    f"(categories: {', '.join(categories)})"
                )
            if any(not phrase.strip() for phrase in code.phrases):
                raise CodebookError(f"code {code.name!r}: an empty phrase would match everything")
            for pattern in code.patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise CodebookError(
                        f"code {code.name!r}: pattern {pattern!r} is not a regular expression "
                        f"({exc})"
                    ) from None

    @property
    def code_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.codes)

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    def code(self, name: str) -> Code:
        for code in self.codes:
            if code.name == name:
                return code
        raise KeyError(name)

    def categories_of(self, codes: Iterable[str]) -> frozenset[str]:
        """Axial coding: the categories the codes belong to."""
        category = {c.name: c.category for c in self.codes}
        return frozenset(category[code] for code in codes)


def load_codebook(path: str | Path) -> Codebook:
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CodebookError(f"{file}: no such codebook") from None
    except tomllib.TOMLDecodeError as exc:
        raise CodebookError(f"{file}: not valid TOML ({exc})") from None
    try:
        return msgspec.convert(raw, Codebook)
    except msgspec.ValidationError as exc:
        raise CodebookError(f"{file}: {exc}") from None
    except CodebookError as exc:
        raise CodebookError(f"{file}: {exc}") from None


class OpenCode(msgspec.Struct, frozen=True):
    """One reasoning's open coding by one coder. An answer that could not be used is kept with
    its raw text and why (``valid`` false), never replaced by a guess; ``error`` is set when no
    answer could be had at all."""

    codes: tuple[str, ...]
    valid: bool = True
    memo: str = ""
    raw: str = ""
    reason: str | None = None
    error: str | None = None
    attempts: int = 1
    requests: int = 0
    cached: bool = False
    invalid_attempts: tuple[InvalidAttempt, ...] = ()


class CodebookCoder:
    """Open coding by the codebook's own rules: a code applies when any of its phrases (whole
    words, case-insensitive, any run of spaces between words) or patterns (case-insensitive)
    occurs in the text. Crude next to a judge — it reads no negation — but exact, free and
    documented, which makes it the reference the judge is compared with."""

    label = "codebook rules"
    backend = "rules"
    model = "codebook"

    def __init__(self, codebook: Codebook) -> None:
        self.codebook = codebook
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        for code in codebook.codes:
            alternatives = [_phrase_regex(p) for p in code.phrases] + list(code.patterns)
            if alternatives:
                rule = re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)
                self._rules.append((code.name, rule))

    def code_text(self, text: str) -> tuple[str, ...]:
        """The codes that apply, in the codebook's order."""
        return tuple(name for name, rule in self._rules if rule.search(text))

    async def code(self, texts: Sequence[str]) -> list[OpenCode]:
        return [OpenCode(codes=self.code_text(text)) for text in texts]

    async def aclose(self) -> None:
        return None


def _phrase_regex(phrase: str) -> str:
    words = [re.escape(word) for word in phrase.split()]
    body = r"\s+".join(words)
    # \b only where the phrase starts or ends with a word character; "(?<!\w)" would also
    # refuse a phrase such as "+" next to a digit, which is what a user writing "+" means.
    start = r"\b" if re.match(r"\w", phrase.strip()) else ""
    end = r"\b" if re.search(r"\w$", phrase.strip()) else ""
    return f"{start}{body}{end}"


class CoreCategory(msgspec.Struct, frozen=True):
    """Selective coding's answer for one group: the category carried by the largest share of
    the group's coded reasonings, and the runner-up, so a narrow lead is visible."""

    category: str | None
    share: float | None
    runner_up: str | None = None
    runner_up_share: float | None = None
    reason: str | None = None


def core_category(counts: Mapping[str, int], reasonings: int, order: Sequence[str]) -> CoreCategory:
    """``counts``: reasonings carrying each category; ``order`` breaks ties (earlier wins)."""
    if reasonings == 0:
        return CoreCategory(None, None, reason="no reasonings were coded")
    ranked = sorted(
        (name for name in order if counts.get(name, 0) > 0),
        key=lambda name: (-counts[name], order.index(name)),
    )
    if not ranked:
        return CoreCategory(None, None, reason="no reasoning carries any category")
    first = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    return CoreCategory(
        category=first,
        share=counts[first] / reasonings,
        runner_up=second,
        runner_up_share=counts[second] / reasonings if second is not None else None,
        reason="tie broken by the codebook's order"
        if second is not None and counts[second] == counts[first]
        else None,
    )
