import numpy as np

from agora.policies.message_board import OFFLINE_POSTS, BoardConfig, Like, MessageBoard, Post


def board(**settings) -> MessageBoard:
    return MessageBoard("board", BoardConfig(**settings), np.random.default_rng(0))


def seed_posts(b: MessageBoard, texts: dict[int, str], tick: int = 0) -> list[Post]:
    for author, text in texts.items():
        b.absorb(tick, author, {"post": text}, b.view(author, tick))
    records, _ = b.end_tick(tick)
    return [r for r in records if isinstance(r, Post)]


def test_posts_appear_next_tick_with_ids_in_author_order_whatever_the_arrival_order():
    b = board()
    assert b.view(0, 0).posts == ()
    for author in (9, 2, 5):
        b.absorb(0, author, {"post": f"from {author}"}, b.view(author, 0))
    assert b.view(1, 0).posts == ()  # frozen within the tick
    records, metrics = b.end_tick(0)
    assert [(r.post_id, r.author) for r in records] == [(1, 2), (2, 5), (3, 9)]
    assert metrics == {"size": 3, "new_posts": 3, "likes": 0, "pruned": 0}
    assert sorted(p.post_id for p in b.view(0, 1).posts) == [1, 2, 3]


def test_likes_count_only_for_visible_posts_of_others_and_up_to_the_cap():
    b = board(max_likes=2)
    seed_posts(b, {1: "a", 2: "b", 3: "c"})
    view = b.view(1, 1)
    records, notes = b.absorb(1, 1, {"likes": [1, 2, 2, 99, "3"]}, view)
    assert [r.post_id for r in records if isinstance(r, Like)] == [2, 3]
    assert "like of post 1 ignored: your own post" in notes
    assert "like of post 99 ignored: not on the board you saw" in notes
    _, notes = b.absorb(1, 2, {"likes": "lots"}, view)
    assert notes == ["likes ignored: not a list of post numbers"]
    _, metrics = b.end_tick(1)
    assert metrics["likes"] == 2
    assert {p.post_id: p.likes for p in b.view(0, 2).posts if p.likes} == {2: 1, 3: 1}


def test_the_least_liked_half_is_pruned_each_tick():
    b = board(prune_fraction=0.5)
    seed_posts(b, {a: f"post {a}" for a in range(1, 7)})
    view = b.view(0, 1)
    for liker, liked in [(10, [1, 2, 3]), (11, [1, 2]), (12, [1])]:
        b.absorb(1, liker, {"likes": liked}, view)
    _, metrics = b.end_tick(1)
    assert metrics["pruned"] == 3 and metrics["size"] == 3
    assert sorted(p.post_id for p in b.view(0, 2).posts) == [1, 2, 3]


def test_top_k_bounds_what_an_agent_sees():
    b = board(top_k=2)
    seed_posts(b, {a: f"post {a}" for a in range(1, 6)})
    view = b.view(0, 1)
    assert len(view.posts) == 2 and view.total == 5
    assert "2 of 5 posts, most liked and newest" in b.render(view)


def test_new_posts_get_places_beside_the_most_liked():
    b = board(top_k=4, fresh_slots=2)
    seed_posts(b, {a: f"old {a}" for a in range(1, 9)})
    view = b.view(0, 1)
    for liker in range(20, 25):
        b.absorb(1, liker, {"likes": [p.post_id for p in view.posts]}, view)
    for author in range(30, 36):
        b.absorb(1, author, {"post": f"new {author}"}, view)
    b.end_tick(1)
    shown = b.view(0, 2).posts
    assert len(shown) == 4
    assert sum(p.text.startswith("new") for p in shown) == 2
    assert sum(p.likes > 0 for p in shown) == 2


def test_over_many_ticks_posts_by_all_kinds_of_authors_get_liked():
    """The board must not freeze on its first posts (a bug once: ties went to low author ids)."""
    b = board()
    rng = np.random.default_rng(1)
    author_of: dict[int, int] = {}
    liked_authors: set[int] = set()
    tops = []
    for tick in range(20):
        for agent in range(200):
            view = b.view(agent, tick)
            fields = b.offline_fields(agent, view, "altruist" if agent % 3 else "egoist", rng)
            records, _ = b.absorb(tick, agent, fields, view)
            liked_authors |= {author_of[r.post_id] for r in records if isinstance(r, Like)}
        records, _ = b.end_tick(tick)
        author_of |= {r.post_id: r.author for r in records if isinstance(r, Post)}
        tops.append(b.view(0, tick + 1).posts[0].post_id)
    assert len(liked_authors) > 30
    assert max(liked_authors) > 150 and min(liked_authors) < 50
    assert len(set(tops)) > 1, "the most liked post changes over time"


def test_long_posts_are_cut_and_say_so():
    b = board(max_post_chars=10)
    _, notes = b.absorb(0, 1, {"post": "x" * 30}, b.view(1, 0))
    records, _ = b.end_tick(0)
    assert records[0].text == "x" * 10 and records[0].truncated
    assert notes == ["post cut to 10 characters"]


def test_the_digest_tracks_posts_and_likes():
    b = board()
    empty = b.digest()
    seed_posts(b, {1: "a"})
    with_post = b.digest()
    b.absorb(1, 2, {"likes": [1]}, b.view(2, 1))
    b.end_tick(1)
    assert len({empty, with_post, b.digest()}) == 3


def test_offline_posting_follows_the_stance():
    b = board()
    seed_posts(b, {1: OFFLINE_POSTS["altruist"][0], 2: OFFLINE_POSTS["egoist"][0]})
    view = b.view(3, 1)
    rng = np.random.default_rng(0)
    likes = {1: 0, 2: 0}
    posts = 0
    for _ in range(400):
        fields = b.offline_fields(3, view, "altruist", rng)
        posts += "post" in fields
        assert fields.get("post", OFFLINE_POSTS["altruist"][0]) in OFFLINE_POSTS["altruist"]
        for post_id in fields.get("likes", []):
            likes[post_id] += 1
    assert 80 < posts < 160  # post_probability 0.3
    assert likes[1] > 5 * likes[2]


def test_likes_that_are_no_post_numbers_are_ignored_not_crashed_on():
    from agora.policies.message_board import _as_ids

    assert _as_ids(["#3", 4, " 5 "]) == [3, 4, 5]
    assert _as_ids("9" * 5000) is None, "thousands of digits are no post number"
    assert _as_ids(["²"]) is None, "a digit str.isdigit() knows but int() refuses"
    assert _as_ids(list(range(31)), most=30) is None, "a list far longer than any like list"
    assert _as_ids([True]) is None and _as_ids([[1]]) is None and _as_ids(None) == []
