"""Checkpoint journals (engine/execution/journal.py): what a crash, a power loss or a full disk
leaves is read back as whole records or not at all, and a resumed run never writes behind it."""
import errno
import os

import pytest

import engine.execution.journal as journal_module
from engine.execution.journal import Journal, count
from conftest import journal_records


def _payload(position: int) -> bytes:
    return bytes((position * 7 + k) % 251 for k in range(100 + 13 * position))


def _written(tmp_path, n: int):
    """A journal of chunks 0 .. n-1, closed; its path."""
    j = Journal(tmp_path)
    for position in range(n):
        j.append(position, _payload(position))
    j.close()
    return tmp_path / "0000.journal"


def test_records_are_read_back_by_another_process_and_a_later_one_replaces_an_earlier(tmp_path):
    first = Journal(tmp_path)
    for position in (5, 0, 1 << 40):  # completion order; a design-row block's position
        first.append(position, _payload(position % 97))
    first.append(0, b"computed again")
    first.close()
    again = Journal(tmp_path)
    assert again.positions() == {0, 5, 1 << 40} and count(tmp_path) == 3
    assert again.read(5) == _payload(5) and again.read(1 << 40) == _payload((1 << 40) % 97)
    assert again.read(0) == b"computed again" and again.read(3) is None
    again.append(3, b"resumed")  # a resumed run appends to a journal of its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000.journal", "0001.journal"]
    assert [p for p, _, _ in journal_records(tmp_path / "0001.journal")] == [3]
    assert Journal(tmp_path).read(3) == b"resumed"


def test_a_torn_tail_ends_its_journal_and_what_follows_in_a_new_journal_is_read(tmp_path):
    path = _written(tmp_path, 4)
    _, start, length = journal_records(path)[2]
    for cut in (start - 3, start + length // 2):  # in record 2's header, then in its payload
        os.truncate(path, cut)
        assert Journal(tmp_path).positions() == {0, 1}
    resumed = Journal(tmp_path)
    resumed.append(2, _payload(2))
    resumed.close()
    assert Journal(tmp_path).positions() == {0, 1, 2} and Journal(tmp_path).read(2) == _payload(2)


@pytest.mark.parametrize("damage", ["a bit flipped", "zeros (a page never written)"])
def test_a_damaged_record_is_not_read_and_no_longer_counted(tmp_path, damage):
    path = _written(tmp_path, 3)
    data = bytearray(path.read_bytes())
    _, start, length = journal_records(path)[1]
    if damage == "a bit flipped":
        data[start + length - 1] ^= 0x01
    else:
        data[start:start + length] = bytes(length)
    path.write_bytes(bytes(data))
    reader = Journal(tmp_path)
    assert reader.positions() == {0, 1, 2}  # (headers only: the damage is found when read)
    assert reader.read(1) is None and reader.positions() == {0, 2}
    assert reader.read(0) == _payload(0) and reader.read(2) == _payload(2)


def test_a_flipped_bit_in_a_header_s_position_cannot_pass_for_another_chunk(tmp_path):
    """The helper's review found this: with the CRC over the payload alone, record 3 relabelled
    as chunk 2 replaced chunk 2's record, and a resumed run merged chunk 3's numbers twice."""
    path = _written(tmp_path, 4)
    data = bytearray(path.read_bytes())
    _, start, _ = journal_records(path)[3]
    data[start - 24 + 4] ^= 0x01  # the position's lowest bit: 3 becomes 2
    path.write_bytes(bytes(data))
    reader = Journal(tmp_path)
    assert reader.positions() == {0, 1, 2}
    assert reader.read(2) is None and reader.read(3) is None  # both chunks are computed again
    assert reader.read(0) == _payload(0) and reader.read(1) == _payload(1)


def test_journals_are_read_in_number_order_past_9999(tmp_path):
    first = Journal(tmp_path)
    first.append(0, b"older")
    first.close()
    (tmp_path / "0000.journal").rename(tmp_path / "9999.journal")
    (tmp_path / "notes.journal").write_bytes(b"not ours")
    later = Journal(tmp_path)
    later.append(0, b"newer")
    later.close()
    assert (tmp_path / "10000.journal").exists()  # (sorted as text, 10000 comes before 9999)
    assert Journal(tmp_path).read(0) == b"newer"


def test_foreign_bytes_end_the_scan(tmp_path):
    j = Journal(tmp_path)
    j.append(0, _payload(0))
    j.close()
    with open(tmp_path / "0000.journal", "ab") as fh:
        fh.write(bytes(40) + b"PVCK")  # zeros where a header should be (position 0, length 0)
    reader = Journal(tmp_path)
    assert reader.positions() == {0} and reader.read(0) == _payload(0)


def test_a_full_disk_cuts_the_partial_record_off_and_names_the_journal(tmp_path, monkeypatch):
    j = Journal(tmp_path)
    j.append(0, _payload(0))
    size = os.path.getsize(tmp_path / "0000.journal")
    real_write = os.write

    def full(fd, data):
        real_write(fd, data[:30])  # part of the record reaches the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(journal_module.os, "write", full)
    with pytest.raises(OSError) as err:
        j.append(1, _payload(1))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "0000.journal")
    assert os.path.getsize(tmp_path / "0000.journal") == size and j.positions() == {0}
    monkeypatch.setattr(journal_module.os, "write", real_write)
    j.append(2, _payload(2))  # space freed: the journal goes on where it was
    j.close()
    assert Journal(tmp_path).positions() == {0, 2} and Journal(tmp_path).read(2) == _payload(2)


def test_a_checkpoint_payload_decodes_to_the_same_aggregates_and_refuses_damage():
    from pathlib import Path

    import numpy as np

    import pivotal
    from engine.execution.aggregate import decode_chunk, encode_chunk
    from engine.execution.executors import Job, run_chunk
    from engine.execution.plan import Chunk
    from engine.model.arrays import build_model_arrays, outcome_ranges

    scenarios = [pivotal.load_scenario(Path(__file__).resolve().parents[2] / "configs" / "scenarios" / name)
                 for name in ("tutorial.toml", "syria_safe_zone_2019.toml")]
    job = Job(1, 0, tuple(build_model_arrays(s) for s in scenarios), tuple(outcome_ranges(s) for s in scenarios), -1)
    aggregates = run_chunk(job, Chunk(0, 0, 0, 0, 50, count=2))
    payload = encode_chunk(aggregates)
    for got, want in zip(decode_chunk(payload), aggregates, strict=True):
        for name, value in vars(want).items():
            assert np.array_equal(getattr(got, name), value) and type(getattr(got, name)) is type(value), name
    figures = np.array([[0.25, np.nan], [3.0, 1e300]])
    assert np.array_equal(decode_chunk(encode_chunk(figures)), figures, equal_nan=True)
    flipped = bytearray(payload)
    flipped[len(payload) // 2] ^= 0x04
    for damaged in (bytes(flipped), payload[:-1], payload + b"\0", b"PVC1" + bytes(20)):
        with pytest.raises(ValueError, match="not a whole checkpoint"):
            decode_chunk(damaged)
