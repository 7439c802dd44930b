import pytest

from agora.engine.log import (
    LogBusyError,
    LogEncodeError,
    LogFormatError,
    RunLogWriter,
    read_log,
    sort_by_kind,
)
from agora.engine.record_kinds import RunRecords
from agora.engine.records import LogRecord, RunHeader


class Like(LogRecord, tag="like"):
    """A record kind of this test's own world, found through the header."""

    tick: int
    agent: int
    post_id: int


class Stray(LogRecord, tag="stray"):
    tick: int


class MarkingWorld:
    name = "marking"
    config_type = dict
    record_types = (Like,)

    def build(self, config, seeds):  # never built: a reader only reads its declarations
        raise AssertionError


WORLD = MarkingWorld()

HEADER = RunHeader(
    run_id="r",
    seed=1,
    config={},
    backend="offline",
    model="offline",
    versions={},
    world="tests.test_log:WORLD",
    world_info={},
    scheduler="lockstep",
    started_at="2026-01-01T00:00:00+00:00",
    format=3,
    records={"like": "world"},
)


def test_records_read_back_in_order(tmp_path):
    path = tmp_path / "log.jsonl"
    with RunLogWriter(path, header=HEADER) as log:
        log.append(Like(tick=0, agent=3, post_id=9))
        # Flushed per record: readable before the writer closes.
        assert len(list(read_log(path))) == 2
    assert list(read_log(path)) == [HEADER, Like(tick=0, agent=3, post_id=9)]
    assert path.read_text().splitlines()[1] == '{"kind":"like","tick":0,"agent":3,"post_id":9}'


def test_an_existing_log_is_never_reopened_for_writing(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("keep me\n")
    with pytest.raises(FileExistsError):
        RunLogWriter(path, header=HEADER)
    assert path.read_text() == "keep me\n"


def test_a_torn_last_line_is_named_or_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    with RunLogWriter(path, header=HEADER):
        pass
    with open(path, "ab") as file:
        file.write(b'{"kind":"like","tick":0,"ag')
    with pytest.raises(LogFormatError, match=r"log\.jsonl:2: the last record is incomplete"):
        list(read_log(path))
    assert list(read_log(path, allow_torn_tail=True)) == [HEADER]


def test_a_file_that_is_not_an_agora_log_is_named_with_its_line(tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text('{"kind":"like","tick":0,"agent":1,"post_id":1}\n')
    with pytest.raises(
        LogFormatError, match=r"other\.jsonl:1: an agora log starts with a 'run' header"
    ):
        list(read_log(path))
    path.write_text(HEADER.__class__.__name__ + "\n")
    with pytest.raises(LogFormatError, match=r"other\.jsonl:1: not an agora log record"):
        list(read_log(path))


def test_a_log_is_created_whole_with_its_header_and_never_left_empty(tmp_path):
    path = tmp_path / "log.jsonl"
    with RunLogWriter(path, header=HEADER):
        assert list(read_log(path)) == [HEADER]
    assert not list(tmp_path.glob(".log-*")), "the temporary file is gone"


def test_a_second_writer_on_one_log_is_refused(tmp_path):
    path = tmp_path / "log.jsonl"
    with (
        RunLogWriter(path, header=HEADER),
        pytest.raises(LogBusyError, match="another agora process"),
    ):
        RunLogWriter(path, append=True)
    with RunLogWriter(path, append=True) as log:  # free again once the first is closed
        log.append_many([Like(tick=0, agent=1, post_id=1), Like(tick=0, agent=2, post_id=1)])
    assert len(list(read_log(path))) == 3


def test_a_record_of_a_kind_the_run_did_not_declare_is_refused_and_named(tmp_path):
    path = tmp_path / "log.jsonl"
    kinds = RunRecords({"like": Like}, {"like": "world"})
    with RunLogWriter(path, header=HEADER, records=kinds) as log:
        with pytest.raises(LogEncodeError, match="'stray' record cannot be logged: no plugin"):
            log.append_many([Like(tick=0, agent=1, post_id=1), Stray(tick=0)])
        with pytest.raises(LogEncodeError, match="'stray' record"):
            log.append(Stray(tick=0))
        log.append(Like(tick=0, agent=2, post_id=1))
    assert len(list(read_log(path))) == 2, "nothing of a refused write reached the log"
    with open(path, "ab") as file:  # as another program could write it
        file.write(b'{"kind":"stray","tick":0}\n')
    with pytest.raises(
        LogFormatError,
        match=r"log\.jsonl:3: not an agora log record \(kind 'stray' is declared by neither the "
        r"run's world nor its policies; its header declares: like\)",
    ):
        list(read_log(path))
    # A reader given the kinds decodes them without the plugins.
    both = RunRecords({"like": Like, "stray": Stray})
    assert list(read_log(path, records=both))[-1] == Stray(tick=0)


def test_kinds_that_share_a_first_letter_are_sorted_by_their_whole_opening():
    lines = [
        b'{"kind":"tick","tick":0}',
        b'{"kind":"trade","tick":0}',
        b'{"kind":"tickle","tick":1}',
        b'{"kind":"like","tick":1}',
        b'{"kind":"resume","tick":1}',
        b'{"kind":"reply","tick":1}',
        b'{"kind":"trade","tick":2}',
    ]
    by_kind = sort_by_kind(lines, ("decision", "tick", "trade", "tickle", "like", "reply"), 10)
    assert by_kind is not None
    assert by_kind.bulk["tick"] == [lines[0]]
    assert by_kind.bulk["trade"] == [lines[1], lines[6]]
    assert by_kind.bulk["tickle"] == [lines[2]]
    assert by_kind.bulk["like"] == [lines[3]] and by_kind.bulk["reply"] == [lines[5]]
    assert by_kind.numbers["trade"].tolist() == [11, 16]
    assert by_kind.others == [(14, lines[4])], "resume shares r with reply, and is no bulk kind"
