"""Grounded-theory coding of a frame of reasonings, per group (e.g. model × condition).

``code_reasonings`` takes a polars frame with group columns, an id column and a text column,
draws a seeded sample of at most ``sample`` reasonings per group, codes the sample with the
codebook's rules and, when given one, with a judge (both code the same rows, so their
agreement is measured on the same items), and returns a ``CodingReport``:
- per coder and group: code and category frequencies (count and share of the group's validly
  coded reasonings), example quotes per code, and the core category (selective coding);
- agreement between the rule coder and the judge: Cohen's kappa per code and per category
  over the items both coded validly, and the mean over codes.

Each distinct text is coded once, whatever the number of rows repeating it. Blank reasonings
(invalid decisions have none) are left out and counted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
import polars as pl

from agora.engine.analysis.codebook import (
    Codebook,
    CodebookCoder,
    CoreCategory,
    OpenCode,
    core_category,
)
from agora.engine.analysis.stats import Kappa, cohen_kappa

_KEY, _ID, _TEXT = "_key", "_id", "_text"
_INVALID_LISTED = 20


class Coder(Protocol):
    """Open coding: texts in, one ``OpenCode`` per text out, in order."""

    @property
    def label(self) -> str: ...

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def code(self, texts: Sequence[str]) -> list[OpenCode]: ...


class Example(msgspec.Struct, frozen=True):
    id: str
    text: str


class CodeFrequency(msgspec.Struct, frozen=True):
    code: str
    category: str
    count: int
    share: float | None
    examples: tuple[Example, ...] = ()


class CategoryFrequency(msgspec.Struct, frozen=True):
    category: str
    count: int
    share: float | None


class GroupCoding(msgspec.Struct, frozen=True):
    """One group as one coder saw it. ``reasonings`` were given to the coder; ``coded`` got a
    valid answer (shares are over these); ``uncoded`` got a valid answer with no code."""

    group: dict[str, Any]
    reasonings: int
    coded: int
    invalid: int
    errors: int
    uncoded: int
    codes: tuple[CodeFrequency, ...]
    categories: tuple[CategoryFrequency, ...]
    core: CoreCategory


class InvalidCoding(msgspec.Struct, frozen=True):
    id: str
    text: str
    raw: str
    reason: str


class CoderResult(msgspec.Struct, frozen=True):
    label: str
    backend: str
    model: str
    groups: tuple[GroupCoding, ...]
    # Over distinct texts: what was asked, and what the cache answered.
    texts: int
    requests: int
    cached: int
    invalid: int
    errors: int
    # The first few unusable answers, with their raw text, for the report.
    invalid_examples: tuple[InvalidCoding, ...] = ()


class LabelAgreement(msgspec.Struct, frozen=True):
    """Agreement on one code (or category) as a yes/no label per item."""

    name: str
    first_count: int
    second_count: int
    kappa: Kappa


class Agreement(msgspec.Struct, frozen=True):
    first: str
    second: str
    items: int
    codes: tuple[LabelAgreement, ...]
    categories: tuple[LabelAgreement, ...]
    # The mean of the codes' kappas where kappa is defined, and how many entered it.
    mean_kappa: float | None
    codes_in_mean: int
    note: str | None = None


class CodingReport(msgspec.Struct, frozen=True):
    codebook: str
    codebook_version: int
    group_by: tuple[str, ...]
    sample: int | None
    seed: int
    rows: int
    blank: int
    sampled: int
    coders: tuple[CoderResult, ...]
    agreement: Agreement | None = None


def sample_reasonings(
    frame: pl.DataFrame,
    *,
    group_by: Sequence[str] = (),
    text: str = "reasoning",
    id: str | None = "id",
    sample: int | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """The rows to code: non-blank reasonings, at most ``sample`` per group, chosen by a seeded
    hash of each row's id, so a row's inclusion depends on (seed, id) alone and not on the
    frame's order or on which other rows are present. Columns: the group columns, ``_id``,
    ``_text``, ``_key`` (the hash, which also orders the examples)."""
    missing = [c for c in (*group_by, text, *([id] if id else [])) if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks column(s) {', '.join(missing)}")
    if sample is not None and sample < 1:
        raise ValueError("sample must be at least 1 (or None for every reasoning)")
    id_column = (
        pl.col(id).cast(pl.String).alias(_ID)
        if id
        else pl.int_range(pl.len(), dtype=pl.Int64).cast(pl.String).alias(_ID)
    )
    rows = frame.select(*group_by, id_column, pl.col(text).cast(pl.String).alias(_TEXT))
    rows = rows.filter(pl.col(_TEXT).is_not_null() & (pl.col(_TEXT).str.strip_chars() != ""))
    if rows.get_column(_ID).n_unique() != rows.height:
        raise ValueError(f"column {id!r} must identify each reasoning (ids repeat)")
    keys = [_hash_key(seed, row_id) for row_id in rows.get_column(_ID).to_list()]
    rows = rows.with_columns(pl.Series(_KEY, keys, dtype=pl.UInt64)).sort([*group_by, _KEY])
    if sample is not None:
        rows = (
            rows.group_by(list(group_by), maintain_order=True).head(sample)
            if group_by
            else rows.head(sample)
        )
    return rows


def _hash_key(seed: int, row_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


async def code_texts(coder: Coder, texts: Sequence[str]) -> list[OpenCode]:
    """Code each distinct text once and spread the results back over ``texts``."""
    distinct = list(dict.fromkeys(texts))
    coded = await coder.code(distinct)
    if len(coded) != len(distinct):
        raise RuntimeError(f"{coder.label} returned {len(coded)} codings for {len(distinct)} texts")
    by_text = dict(zip(distinct, coded, strict=True))
    return [by_text[t] for t in texts]


async def code_reasonings(
    frame: pl.DataFrame,
    codebook: Codebook,
    *,
    group_by: Sequence[str] = (),
    text: str = "reasoning",
    id: str | None = "id",
    judge: Coder | None = None,
    sample: int | None = None,
    seed: int = 0,
    examples: int = 3,
    example_chars: int = 200,
) -> CodingReport:
    """Sample, code with the rules (and the judge), and summarise; see the module docstring."""
    rows = sample_reasonings(frame, group_by=group_by, text=text, id=id, sample=sample, seed=seed)
    texts = rows.get_column(_TEXT).to_list()
    rule_coder = CodebookCoder(codebook)
    results: list[tuple[Coder, list[OpenCode]]] = [
        (rule_coder, await code_texts(rule_coder, texts))
    ]
    if judge is not None:
        results.append((judge, await code_texts(judge, texts)))
    coders = tuple(
        summarise_coder(
            rows, coder, codings, codebook, group_by, examples=examples, chars=example_chars
        )
        for coder, codings in results
    )
    agreement = None
    if judge is not None:
        # One item per distinct text: each coder judged each text once, so repeats of a text
        # are not further judgements (they would shrink kappa's standard error for nothing).
        first_rows = list({t: i for i, t in reversed(list(enumerate(texts)))}.values())
        agreement = code_agreement(
            [results[0][1][i] for i in first_rows],
            [results[1][1][i] for i in first_rows],
            codebook,
        )
        agreement = msgspec.structs.replace(
            agreement, first=rule_coder.label, second=judge.label, note=_agreement_note(judge)
        )
    return CodingReport(
        codebook=codebook.name,
        codebook_version=codebook.version,
        group_by=tuple(group_by),
        sample=sample,
        seed=seed,
        rows=frame.height,
        blank=_blank_count(frame, text),
        sampled=rows.height,
        coders=coders,
        agreement=agreement,
    )


def _blank_count(frame: pl.DataFrame, text: str) -> int:
    column = frame.get_column(text).cast(pl.String)
    return int((column.is_null() | (column.str.strip_chars() == "")).sum())


def _agreement_note(judge: Coder) -> str | None:
    if judge.backend == "offline":
        return (
            "the judge is the offline stand-in, which answers with the codebook's rules: "
            "agreement is 1 by construction apart from its injected faults, and says nothing "
            "about a model"
        )
    return None


def summarise_coder(
    rows: pl.DataFrame,
    coder: Coder,
    codings: Sequence[OpenCode],
    codebook: Codebook,
    group_by: Sequence[str],
    *,
    examples: int = 3,
    chars: int = 200,
) -> CoderResult:
    """Frequencies, examples and the core category per group for one coder's codings of
    ``rows`` (as ``sample_reasonings`` returns them, in the same order)."""
    if len(codings) != rows.height:
        raise ValueError("one coding per row is needed")
    category_of = {c.name: c.category for c in codebook.codes}
    coded = rows.with_columns(
        pl.Series("_valid", [c.valid for c in codings], dtype=pl.Boolean),
        pl.Series("_error", [c.error is not None for c in codings], dtype=pl.Boolean),
        pl.Series("_codes", [list(c.codes) for c in codings], dtype=pl.List(pl.String)),
        pl.Series(
            "_categories",
            [sorted({category_of[x] for x in c.codes}) for c in codings],
            dtype=pl.List(pl.String),
        ),
    )
    keys = list(group_by)
    totals = (
        coded.group_by(keys, maintain_order=True).agg(
            pl.len().alias("reasonings"),
            pl.col("_valid").sum().alias("coded"),
            pl.col("_error").sum().alias("errors"),
            (pl.col("_valid") & (pl.col("_codes").list.len() == 0)).sum().alias("uncoded"),
        )
        if keys
        else coded.select(
            pl.len().alias("reasonings"),
            pl.col("_valid").sum().alias("coded"),
            pl.col("_error").sum().alias("errors"),
            (pl.col("_valid") & (pl.col("_codes").list.len() == 0)).sum().alias("uncoded"),
        )
    )
    valid = coded.filter(pl.col("_valid"))
    code_counts = _counts(valid, keys, "_codes")
    category_counts = _counts(valid, keys, "_categories")
    quotes = _examples(valid, keys, examples, chars)

    groups: list[GroupCoding] = []
    for total in totals.iter_rows(named=True):
        group = {k: total[k] for k in keys}
        key = tuple(total[k] for k in keys)
        n_coded = int(total["coded"])
        n_errors = int(total["errors"])
        by_code = code_counts.get(key, {})
        by_category = category_counts.get(key, {})
        groups.append(
            GroupCoding(
                group=group,
                reasonings=int(total["reasonings"]),
                coded=n_coded,
                invalid=int(total["reasonings"]) - n_coded - n_errors,
                errors=n_errors,
                uncoded=int(total["uncoded"]),
                codes=tuple(
                    CodeFrequency(
                        code=c.name,
                        category=c.category,
                        count=by_code.get(c.name, 0),
                        share=_share(by_code.get(c.name, 0), n_coded),
                        examples=quotes.get((*key, c.name), ()),
                    )
                    for c in codebook.codes
                ),
                categories=tuple(
                    CategoryFrequency(
                        category=name,
                        count=by_category.get(name, 0),
                        share=_share(by_category.get(name, 0), n_coded),
                    )
                    for name in codebook.category_names
                ),
                core=core_category(by_category, n_coded, codebook.category_names),
            )
        )
    ids, texts = rows.get_column(_ID).to_list(), rows.get_column(_TEXT).to_list()
    # Usage is counted over distinct texts: repeated texts were asked once.
    first_of: dict[str, OpenCode] = {}
    for text_value, coding in zip(texts, codings, strict=True):
        first_of.setdefault(text_value, coding)
    unusable = [
        InvalidCoding(
            id=row_id, text=_quote(text_value, chars), raw=c.raw, reason=c.reason or "unknown"
        )
        for row_id, text_value, c in zip(ids, texts, codings, strict=True)
        if not c.valid
    ]
    return CoderResult(
        label=coder.label,
        backend=coder.backend,
        model=coder.model,
        groups=tuple(groups),
        texts=len(first_of),
        requests=sum(c.requests for c in first_of.values()),
        cached=sum(1 for c in first_of.values() if c.cached),
        invalid=sum(1 for c in first_of.values() if not c.valid and c.error is None),
        errors=sum(1 for c in first_of.values() if c.error is not None),
        invalid_examples=tuple(unusable[:_INVALID_LISTED]),
    )


def _share(count: int, total: int) -> float | None:
    return count / total if total else None


def _counts(
    frame: pl.DataFrame, keys: list[str], column: str
) -> dict[tuple[Any, ...], dict[str, int]]:
    exploded = frame.select(*keys, pl.col(column)).explode(column).drop_nulls(column)
    counted = exploded.group_by([*keys, column]).len()
    result: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in counted.iter_rows(named=True):
        result.setdefault(tuple(row[k] for k in keys), {})[row[column]] = int(row["len"])
    return result


def _examples(
    frame: pl.DataFrame, keys: list[str], per_code: int, chars: int
) -> dict[tuple[Any, ...], tuple[Example, ...]]:
    """Up to ``per_code`` distinct quotes per (group, code), lowest seeded hash first: a
    representative draw that is the same on every run of the analysis."""
    if per_code < 1:
        return {}
    exploded = (
        frame.select(*keys, _ID, _TEXT, _KEY, "_codes")
        .explode("_codes")
        .drop_nulls("_codes")
        .sort([*keys, "_codes", _KEY])
        .unique(subset=[*keys, "_codes", _TEXT], keep="first", maintain_order=True)
        .group_by([*keys, "_codes"], maintain_order=True)
        .head(per_code)
    )
    result: dict[tuple[Any, ...], list[Example]] = {}
    for row in exploded.iter_rows(named=True):
        key = (*(row[k] for k in keys), row["_codes"])
        result.setdefault(key, []).append(Example(row[_ID], _quote(row[_TEXT], chars)))
    return {key: tuple(value) for key, value in result.items()}


_SPACE = re.compile(r"\s+")


def _quote(text: str, chars: int) -> str:
    """One line of at most ``chars`` characters, cut at a word where one is near the limit."""
    line = _SPACE.sub(" ", text).strip()
    if len(line) <= chars:
        return line
    cut = line[: max(1, chars - 1)]
    space = cut.rfind(" ")
    if space >= chars * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def code_agreement(
    first: Sequence[OpenCode], second: Sequence[OpenCode], codebook: Codebook
) -> Agreement:
    """Cohen's kappa per code and per category between two coders of the same items, over the
    items both coded validly; the mean is over the codes whose kappa is defined."""
    if len(first) != len(second):
        raise ValueError("both coders must code the same items")
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if a.valid and b.valid]
    code_sets = [(set(a.codes), set(b.codes)) for a, b in pairs]
    category_sets = [(codebook.categories_of(a), codebook.categories_of(b)) for a, b in code_sets]
    codes = tuple(_label_agreement(name, code_sets) for name in codebook.code_names)
    categories = tuple(_label_agreement(name, category_sets) for name in codebook.category_names)
    defined = [c.kappa.kappa for c in codes if c.kappa.kappa is not None]
    return Agreement(
        first="first",
        second="second",
        items=len(pairs),
        codes=codes,
        categories=categories,
        mean_kappa=sum(defined) / len(defined) if defined else None,
        codes_in_mean=len(defined),
    )


def _label_agreement(
    name: str, sets: Sequence[tuple[set[str] | frozenset[str], set[str] | frozenset[str]]]
) -> LabelAgreement:
    left = [name in a for a, _ in sets]
    right = [name in b for _, b in sets]
    return LabelAgreement(
        name=name,
        first_count=sum(left),
        second_count=sum(right),
        kappa=cohen_kappa(left, right),
    )


def group_table(report: CodingReport, coder: int = 0) -> list[Mapping[str, Any]]:
    """One flat row per (group, code) of one coder, for a markdown table or a CSV."""
    rows: list[Mapping[str, Any]] = []
    for group in report.coders[coder].groups:
        for code in group.codes:
            rows.append(
                {
                    **group.group,
                    "code": code.code,
                    "category": code.category,
                    "count": code.count,
                    "share": code.share,
                    "core": group.core.category,
                }
            )
    return rows
