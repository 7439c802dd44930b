import pytest

from agora.engine.log import LogBusyError, LogFormatError, RunLogWriter, read_log
from agora.engine.records import Like, RunHeader

HEADER = RunHeader(
    run_id="r",
    seed=1,
    config={},
    backend="offline",
    model="offline",
    versions={},
    world="w",
    world_info={},
    scheduler="lockstep",
    started_at="2026-01-01T00:00:00+00:00",
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
