"""A shared, norm-setting message board: agents post and like; the least-liked half is pruned.

Within a tick the board is frozen: every agent sees the same posts, and the tick's posts and
likes take effect together at the tick's end (decisions are simultaneous). New posts get ids in
author order at the tick's end, so ids never depend on which answer arrived first.

An agent sees the most liked posts and, in ``fresh_slots`` of its ``top_k`` places, the newest
ones: without them a new post could never be seen, so never liked, and the first posts would
hold the board for good. Ties are broken by a seeded draw per post, not by author number.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import numpy as np

from agora.engine.protocols import AnswerField, World
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]

# Short norm-setting messages the offline behavioural model writes, by stance.
OFFLINE_POSTS: dict[str, tuple[str, ...]] = {
    "altruist": (
        "If your district is more than half full, consider moving somewhere emptier: all gain.",
        "Think of the whole city: a small cost to one of us can be a big gain for all.",
        "Balanced districts make the most people satisfied. Let's spread out.",
    ),
    "egoist": (
        "Go where you are most satisfied; that is what the numbers are for.",
        "Look after yourself first. Nobody else will move for you.",
        "Crowded districts are fine by me as long as my own satisfaction goes up.",
    ),
}

# A post counts for the stance whose offline texts hold it; other texts (a model's) count for none.
_STANCE_OF_POST = {text: stance for stance, texts in OFFLINE_POSTS.items() for text in texts}


class OfflinePosting(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    post_probability: Probability = 0.3
    # Chance of liking a visible post that matches the agent's stance, and one that does not.
    like_same: Probability = 0.4
    like_other: Probability = 0.05


class BoardConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "message_board"
    top_k: Annotated[int, msgspec.Meta(ge=1)] = 10
    # Of the top_k places, how many show the newest posts rather than the most liked.
    fresh_slots: Annotated[int, msgspec.Meta(ge=0)] = 4
    prune_fraction: Probability = 0.5
    # Ranking and pruning use a score that keeps this fraction of itself each tick, plus the
    # tick's new likes; 1.0 ranks by all-time likes, which lets the first posts hold the top.
    score_decay: Probability = 0.5
    max_post_chars: Annotated[int, msgspec.Meta(ge=1)] = 280
    max_likes: Annotated[int, msgspec.Meta(ge=0)] = 3
    offline: OfflinePosting = msgspec.field(default_factory=OfflinePosting)


class Post(LogRecord, tag="post"):
    """A post as it went up on the board, at the end of its tick (the board's own log kind)."""

    tick: int
    post_id: int
    author: AgentId
    text: str
    truncated: bool = False


class Like(LogRecord, tag="like"):
    """One agent's like of a post it saw, logged with the decision that gave it."""

    tick: int
    agent: AgentId
    post_id: int


class BoardPost(msgspec.Struct, frozen=True):
    post_id: int
    author: AgentId
    tick: int
    likes: int
    text: str


class BoardView(msgspec.Struct, frozen=True):
    posts: tuple[BoardPost, ...]
    total: int


@dataclass(slots=True)
class _Entry:
    post_id: int
    author: AgentId
    tick: int
    text: str
    tie_break: float
    likes: int = 0
    score: float = 0.0

    def liked_first(self) -> tuple[float, int, float]:
        return (-self.score, -self.tick, self.tie_break)


class MessageBoard:
    def __init__(self, name: str, config: BoardConfig, rng: np.random.Generator) -> None:
        self.name = name
        self.config = config
        self._rng = rng
        self._posts: dict[int, _Entry] = {}
        self._next_id = 1
        self._staged: dict[AgentId, tuple[str, bool]] = {}
        self._likes: Counter[int] = Counter()
        self._view: tuple[int, BoardView] | None = None
        # Everyone sees the same view in a tick: what is derived from it is made once.
        self._derived: tuple[BoardView, _Derived] | None = None
        # Asked for at every parse: built once.
        self._answer_fields = self._make_answer_fields()

    def view(self, agent_id: AgentId, tick: int) -> BoardView:
        if self._view is None or self._view[0] != tick:
            self._view = (tick, self._build_view())
        return self._view[1]

    def _build_view(self) -> BoardView:
        entries = list(self._posts.values())
        fresh = min(self.config.fresh_slots, self.config.top_k, len(entries))
        liked = sorted(entries, key=_Entry.liked_first)[: self.config.top_k - fresh]
        shown = {e.post_id for e in liked}
        newest = sorted(
            (e for e in entries if e.post_id not in shown), key=lambda e: (-e.tick, e.tie_break)
        )
        chosen = liked + newest[: self.config.top_k - len(liked)]
        chosen.sort(key=_Entry.liked_first)
        posts = tuple(BoardPost(e.post_id, e.author, e.tick, e.likes, e.text) for e in chosen)
        return BoardView(posts=posts, total=len(entries))

    def _derive(self, view: BoardView) -> _Derived:
        if self._derived is not None and self._derived[0] is view:
            return self._derived[1]
        derived = _Derived.of(view)
        self._derived = (view, derived)
        return derived

    def render(self, view: BoardView) -> str:
        return self._derive(view).text

    def answer_fields(self) -> Sequence[AnswerField]:
        return self._answer_fields

    def _make_answer_fields(self) -> tuple[AnswerField, ...]:
        return (
            AnswerField(
                "post",
                f"a message for the public board, at most {self.config.max_post_chars} "
                "characters; everyone sees the most liked posts next round",
                required=False,
                schema={"type": "string", "maxLength": self.config.max_post_chars},
            ),
            AnswerField(
                "likes",
                f"a list of up to {self.config.max_likes} post numbers from the board you endorse",
                required=False,
                schema={
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "maxItems": self.config.max_likes,
                },
            ),
        )

    def absorb(
        self, tick: int, agent_id: AgentId, fields: Mapping[str, Any], view: Any
    ) -> tuple[list[LogRecord], list[str]]:
        board: BoardView = view
        records: list[LogRecord] = []
        notes: list[str] = []
        post = fields.get("post")
        if isinstance(post, str) and post.strip():
            text = " ".join(post.split())
            truncated = len(text) > self.config.max_post_chars
            self._staged[agent_id] = (text[: self.config.max_post_chars], truncated)
            if truncated:
                notes.append(f"post cut to {self.config.max_post_chars} characters")
        elif post not in (None, ""):
            notes.append("post ignored: not text")

        likes = _as_ids(fields.get("likes"), most=_LIKES_SLACK * max(1, self.config.max_likes))
        if likes is None:
            notes.append("likes ignored: not a list of post numbers")
            likes = []
        visible = self._derive(board).by_id
        taken: list[int] = []
        for post_id in likes:
            if post_id in taken:
                continue
            if post_id not in visible:
                notes.append(f"like of post {post_id} ignored: not on the board you saw")
            elif visible[post_id].author == agent_id:
                notes.append(f"like of post {post_id} ignored: your own post")
            elif len(taken) >= self.config.max_likes:
                notes.append(f"like of post {post_id} ignored: at most {self.config.max_likes}")
            else:
                taken.append(post_id)
        for post_id in taken:
            self._likes[post_id] += 1
            records.append(Like(tick=tick, agent=agent_id, post_id=post_id))
        return records, notes

    def end_tick(self, tick: int) -> tuple[list[LogRecord], dict[str, Any]]:
        for entry in self._posts.values():
            entry.score *= self.config.score_decay
        for post_id, count in self._likes.items():
            self._posts[post_id].likes += count
            self._posts[post_id].score += count
        liked = sum(self._likes.values())
        self._likes.clear()

        # Prune among the posts that were up this tick: new posts get one tick to be liked.
        ranked = sorted(self._posts.values(), key=lambda e: (e.score, e.tick, e.tie_break))
        pruned = int(len(ranked) * self.config.prune_fraction)
        for entry in ranked[:pruned]:
            del self._posts[entry.post_id]

        records: list[LogRecord] = []
        for author in sorted(self._staged):
            text, truncated = self._staged[author]
            entry = _Entry(self._next_id, author, tick, text, float(self._rng.random()))
            self._posts[entry.post_id] = entry
            records.append(
                Post(
                    tick=tick, post_id=entry.post_id, author=author, text=text, truncated=truncated
                )
            )
            self._next_id += 1
        new_posts = len(self._staged)
        self._staged.clear()
        self._view = None
        metrics = {
            "size": len(self._posts),
            "new_posts": new_posts,
            "likes": liked,
            "pruned": pruned,
        }
        return records, metrics

    def offline_fields(
        self, agent_id: AgentId, view: Any, stance: str, rng: np.random.Generator
    ) -> dict[str, Any]:
        board: BoardView = view
        fields: dict[str, Any] = {}
        offline = self.config.offline
        own = OFFLINE_POSTS.get(stance, ())
        if own and rng.random() < offline.post_probability:
            # random() rather than integers(): a tenth of the cost, once per decision.
            fields["post"] = own[int(rng.random() * len(own))]
        if not board.posts:
            return fields
        derived = self._derive(board)
        chances = derived.like_chances(stance, own, offline)
        likes: list[int] = []
        limit = self.config.max_likes
        draws = rng.random(len(board.posts)).tolist()
        for post, draw, chance in zip(board.posts, draws, chances, strict=True):
            if draw < chance and post.author != agent_id:
                likes.append(post.post_id)
                if len(likes) >= limit:
                    break
        if likes:
            fields["likes"] = likes
        return fields

    def offline_signals(self, view: Any) -> Mapping[str, float]:
        if view is None:
            return {}
        return self._derive(view).signals

    def digest(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for entry in sorted(self._posts.values(), key=lambda e: e.post_id):
            digest.update(
                f"{entry.post_id}:{entry.author}:{entry.tick}:{entry.likes}:{entry.score!r}:".encode()
            )
            digest.update(entry.text.encode())
            digest.update(b"\x00")
        digest.update(str(self._next_id).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class _Derived:
    text: str
    by_id: dict[int, BoardPost]
    signals: dict[str, float]
    posts: tuple[BoardPost, ...] = ()
    _chances: dict[str, list[float]] = field(default_factory=dict)

    def like_chances(
        self, stance: str, own: tuple[str, ...], offline: OfflinePosting
    ) -> list[float]:
        """Each visible post's chance of an offline like by an agent of this stance."""
        chances = self._chances.get(stance)
        if chances is None:
            chances = [
                offline.like_same if p.text in own else offline.like_other for p in self.posts
            ]
            self._chances[stance] = chances
        return chances

    @classmethod
    def of(cls, view: BoardView) -> _Derived:
        if view.posts:
            lines = [
                f"Message board ({len(view.posts)} of {view.total} posts, most liked and newest):"
            ]
            for post in view.posts:
                likes = "like" if post.likes == 1 else "likes"
                lines.append(f"[post {post.post_id}, {post.likes} {likes}] {post.text}")
            text = "\n".join(lines)
        else:
            text = "Message board: no posts yet."
        counts = {stance: 0 for stance in OFFLINE_POSTS}
        for post in view.posts:
            stance = _STANCE_OF_POST.get(post.text)
            if stance is not None:
                counts[stance] += 1
        signals = {stance: count / len(view.posts) for stance, count in counts.items() if count}
        return cls(text, {p.post_id: p for p in view.posts}, signals, view.posts)


# A post number is a counter: more digits than this is not one (and int() of thousands of
# digits is refused by Python itself).
_ID_DIGITS = 18
# A list this much longer than max_likes is not a list of likes; reading it would only fill the
# decision's notes.
_LIKES_SLACK = 10


def _as_ids(value: Any, most: int = 1_000) -> list[int] | None:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if len(items) > most:
        return None
    ids = []
    for item in items:
        if isinstance(item, bool):
            return None
        if isinstance(item, int):
            ids.append(item)
            continue
        text = item.strip().lstrip("#") if isinstance(item, str) else ""
        # ASCII only: str.isdigit() also accepts "²", which int() refuses.
        if text.isascii() and text.isdigit() and len(text) <= _ID_DIGITS:
            ids.append(int(text))
        else:
            return None
    return ids


class MessageBoardPlugin:
    name = "message_board"
    config_type = BoardConfig
    # What one agent posts, every other reads: the board needs a shared tick.
    shares_state = True
    # The log kinds the board writes: the run header lists them, and every reader decodes them.
    record_types = (Post, Like)

    def build(
        self, config: Any, seeds: Seeds, name: str = "board", world: World | None = None
    ) -> MessageBoard:
        return MessageBoard(name, config, seeds.rng(f"policy:{name}"))


PLUGIN = MessageBoardPlugin()
