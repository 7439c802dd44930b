"""The games' and stances' texts: two TOML data files (``games.toml`` and ``stances.toml``
beside this file; ``world.games`` and ``world.stances_file`` point at others). A bad file, a
missing field, an unknown template name or a duplicate key is one line naming the file, the
entry and the fix (exit 2).
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from agora.engine.config import ConfigError

DEFAULT_GAMES = Path(__file__).with_name("games.toml")
DEFAULT_STANCES = Path(__file__).with_name("stances.toml")
# What a game's text may name (filled in from the world's config).
TEMPLATE_NAMES = frozenset(
    {"endowment", "multiplier", "group", "others", "sent", "received", "kept", "budget"}
)


class Game(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str
    title: str
    text: str
    question: str
    maximum: Literal["endowment", "received", "budget"] = "endowment"
    multiplier: float = 1.0
    # What the other player sent (trustee, observer), as a share of the endowment, when the
    # world's ``sent`` is unset; unset here too: half.
    sent_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None


class Texts(msgspec.Struct, frozen=True):
    games: tuple[Game, ...]
    stances: dict[str, str]
    source: str
    digest: str

    def game(self, key: str) -> Game:
        for game in self.games:
            if game.key == key:
                return game
        raise KeyError(key)


def _read(file: Path, field: str) -> tuple[dict[str, Any], bytes]:
    try:
        data = file.read_bytes()
        return tomllib.loads(data.decode("utf-8")), data
    except FileNotFoundError:
        raise ConfigError(f"{field}: no file {file} (give a TOML path)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{field}: {file} is not a readable TOML file ({exc})") from None


def load_texts(games_path: str | None, stances_path: str | None) -> Texts:
    games_file = DEFAULT_GAMES if games_path is None else Path(games_path)
    stances_file = DEFAULT_STANCES if stances_path is None else Path(stances_path)
    table, games_data = _read(games_file, "world.games")
    entries = table.get("game")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"world.games: {games_file} has no [[game]] entries; add at least one")
    games: list[Game] = []
    for number, entry in enumerate(entries, start=1):
        where = f"world.games: {games_file}: game {number}"
        try:
            game = msgspec.convert(entry, Game)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{where}: {exc}; a game needs key, title, text, question") from None
        for name, text in (("text", game.text), ("question", game.question)):
            named = {n for _, n, _, _ in string.Formatter().parse(text) if n is not None}
            unknown = sorted(named - TEMPLATE_NAMES)
            if unknown:
                raise ConfigError(
                    f"{where}: {name} names {{{unknown[0]}}}; use only "
                    f"{', '.join('{' + n + '}' for n in sorted(TEMPLATE_NAMES))}"
                )
        if not game.key.strip() or not game.text.strip() or not game.question.strip():
            raise ConfigError(f"{where}: an empty key, text or question; write each")
        if game.key in {g.key for g in games}:
            raise ConfigError(f"{where}: key {game.key!r} is used twice; keys must differ")
        games.append(game)
    stance_table, stances_data = _read(stances_file, "world.stances_file")
    stances = stance_table.get("stance")
    if (
        not isinstance(stances, dict)
        or not stances
        or not all(isinstance(v, str) and v.strip() for v in stances.values())
    ):
        raise ConfigError(
            f'world.stances_file: {stances_file} needs a [stance] table of name = "sentence"'
        )
    digest = hashlib.sha256(games_data + b"\0" + stances_data).hexdigest()[:16]
    source = f"{games_path or 'default'} + {stances_path or 'default'}"
    return Texts(tuple(games), dict(stances), source, digest)
