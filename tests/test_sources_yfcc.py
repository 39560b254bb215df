import bz2
import datetime as dt
import gzip
import shutil
from urllib.parse import unquote_plus

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.yfcc_helpers import photo_hash, yfcc_line

from passkit.core.attribution import clean_text as clean_text_one
from passkit.core.keys import make_key
from passkit.sources.columns import (
    clean_text,
    coordinate_unparsable,
    decodes_to_bad_utf8,
    parse_coordinate,
    percent_decode,
    to_utf8,
)
from passkit.sources.yfcc import ORIGINAL, SINGLE_FILE, YfccFormatError, YfccReader, detect_layout

HAS_LBZIP2 = shutil.which("lbzip2") is not None
DECOMPRESSORS = ["python", pytest.param("lbzip2", marks=pytest.mark.skipif(not HAS_LBZIP2, reason="no lbzip2"))]


def write(path, lines, compression="none", newline_at_end=True):
    data = ("\n".join(lines) + ("\n" if newline_at_end else "")).encode() if isinstance(lines[0], str) else lines
    if isinstance(data, list):
        data = b"\n".join(data) + (b"\n" if newline_at_end else b"")
    opener = {"none": open, "bz2": bz2.open, "gzip": gzip.open}[compression]
    with opener(path, "wb") as handle:
        handle.write(data)
    return path


def read_all(path, **kw):
    reader = YfccReader(path, **kw)
    table = pa.concat_tables(list(reader))
    return reader, table.to_pylist()


@pytest.mark.parametrize("layout", ["original", "single-file"])
def test_real_format_rows_parse_exactly(tmp_path, layout):
    lines = [
        yfcc_line(layout, 1),
        yfcc_line(
            layout,
            2,
            photo_id=343224206,
            nsid="12037949754@N01",
            nickname="Jürgen & Co+",
            title="",
            license="by-nc-sa",
            date_taken="null",
            longitude="",
            latitude="",
        ),
    ]
    reader, rows = read_all(write(tmp_path / "yfcc100m_dataset", lines))
    assert reader.layout is (ORIGINAL if layout == "original" else SINGLE_FILE)
    first, second = rows
    assert first == {
        "key": "yfcc-6985418911",
        "source": "yfcc",
        "photo_id": "6985418911",
        "url": "http://farm8.staticflickr.com/7205/6985418911_df7747990d.jpg",
        "page_url": "http://www.flickr.com/photos/39089491@N00/6985418911/",
        "license": "CC-BY-2.0",
        "license_url": "http://creativecommons.org/licenses/by/2.0/",
        "license_raw": "Attribution License",
        "creator": "nino63004",
        "creator_id": "39089491@N00",
        "title": "Key West été",
        "date_taken": dt.datetime(2012, 2, 16, 9, 56, 37),
        "date_taken_raw": "2012-02-16 09:56:37.0",
        "date_uploaded": dt.datetime(2012, 3, 15, 19, 41, 23),
        "latitude": 24.550558,  # the dump has longitude first
        "longitude": -81.804885,
        "photo_hash": photo_hash(first["url"]) if layout == "single-file" else None,
        "is_video": False,
        "malformed": None,
        "source_file": "yfcc100m_dataset",
        "line": 1,
    }
    assert second["key"] == make_key("yfcc", "343224206")
    assert second["creator"] == "Jürgen & Co+"  # %-decoded: "+" in a name survives as %2B
    assert second["license"] == "CC-BY-NC-SA-2.0"
    assert second["title"] == ""
    assert second["date_taken"] is None and second["date_taken_raw"] == "null"
    assert second["latitude"] is None and second["longitude"] is None
    assert second["malformed"] is None


def test_photo_hash_has_no_zero_padding():
    # Every byte printed with %x: bytes < 0x10 give one digit, so hashes are 30-32 digits long.
    lengths = {len(photo_hash(f"http://farm1.staticflickr.com/1/{i}_abc.jpg")) for i in range(400)}
    assert min(lengths) < 32 and max(lengths) == 32


@pytest.mark.parametrize("compression", ["none", "bz2", "gzip"])
@pytest.mark.parametrize("decompressor", DECOMPRESSORS)
def test_compressed_inputs_read_the_same(tmp_path, compression, decompressor):
    lines = [yfcc_line("single-file", i, photo_id=1000 + i) for i in range(1, 2001)]
    path = write(tmp_path / "part", lines, compression)
    reader, rows = read_all(path, chunk_bytes=64 << 10, decompressor=decompressor)
    assert reader.rows == 2000 and not reader.problem
    assert [row["key"] for row in rows] == [f"yfcc-{1000 + i}" for i in range(1, 2001)]
    assert [row["line"] for row in rows] == list(range(1, 2001))
    assert all(row["malformed"] is None for row in rows)


def test_layout_is_detected_from_the_data_and_junk_is_refused():
    assert detect_layout(yfcc_line("original").encode()) is ORIGINAL
    assert detect_layout(yfcc_line("single-file", 7).encode()) is SINGLE_FILE
    with pytest.raises(YfccFormatError, match="not YFCC100M"):
        detect_layout(b"url,license\nhttp://x/1.jpg,4\n")


def test_bad_lines_become_malformed_rows_with_line_numbers(tmp_path):
    good = yfcc_line("original", photo_id=11)
    lines = [
        good.encode(),
        b"12\tonly\tthree",  # wrong field count
        yfcc_line("original", photo_id=13).replace("nino63004", "nino\xff").encode("latin-1"),  # not UTF-8
        yfcc_line("original", photo_id=14).replace("nino63004", "ni\x00no").encode(),  # NUL
        yfcc_line("original", photo_id=15, longitude="east").encode(),  # unparsable number
        yfcc_line("original", photo_id=16, marker="7").encode(),
        yfcc_line("original", photo_id="x17").encode(),  # type: ignore[arg-type]
        yfcc_line("original", photo_id=18).replace("Key+West+%C3%A9t%C3%A9", "caf%E9").encode(),  # bad %-UTF-8
        b"",  # empty line
        yfcc_line("original", photo_id=19, date_uploaded="soon").encode(),
        yfcc_line("original", photo_id=20).encode()[:-40],  # truncated last line, no newline
    ]
    path = write(tmp_path / "yfcc100m_dataset-0", lines, newline_at_end=False)
    reader, rows = read_all(path, chunk_bytes=1 << 10)
    assert reader.rows == len(lines) == len(rows)
    assert [row["line"] for row in rows] == list(range(1, len(lines) + 1))
    by_line = {row["line"]: row for row in rows}
    assert by_line[1]["malformed"] is None
    details = {line: (row["malformed"] or "") for line, row in by_line.items()}
    assert "expected 23 tab-separated fields, found 3" in details[2]
    assert "UTF-8" in details[3]
    assert "NUL" in details[4]
    assert details[5] == "longitude is not a number"
    assert details[6] == "marker is not 0 or 1"
    assert details[7] == "photo id is not a number"
    assert "UTF-8" in details[8]
    assert "found 1" in details[9]
    assert details[10] == "date uploaded is not a number"
    assert "truncated" in details[11]
    assert by_line[2]["key"] == "yfcc-12"  # the id field was readable
    assert by_line[7]["key"] == make_key("yfcc", "yfcc100m_dataset-0:7")
    assert by_line[11]["key"] == "yfcc-20"


def test_last_line_without_newline_is_fine_when_complete(tmp_path):
    path = write(tmp_path / "f", [yfcc_line(photo_id=1), yfcc_line(photo_id=2)], newline_at_end=False)
    _, rows = read_all(path)
    assert [(row["key"], row["malformed"]) for row in rows] == [("yfcc-1", None), ("yfcc-2", None)]


@pytest.mark.parametrize("decompressor", DECOMPRESSORS)
def test_truncated_bz2_stream_is_reported_once_and_rows_are_kept(tmp_path, decompressor):
    lines = [yfcc_line("original", photo_id=100 + i, title=f"photo {i} " * (i % 7)) for i in range(30000)]
    full = bz2.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "cut.bz2"
    path.write_bytes(full[: int(len(full) * 0.7)])
    reader, rows = read_all(path, decompressor=decompressor, chunk_bytes=256 << 10)
    assert "damaged or truncated" in reader.problem and f"{reader.rows - 1:,} rows read" in reader.problem
    assert 0 < len(rows) < 30000 and reader.rows == len(rows)
    assert all(row["malformed"] is None for row in rows[:-1])
    assert rows[-1]["malformed"] is not None  # the line cut by the damage
    assert [row["key"] for row in rows[:-1]] == [f"yfcc-{100 + i}" for i in range(len(rows) - 1)]


def test_bogus_dates_are_null_with_raw_value_kept(tmp_path):
    lines = [
        yfcc_line(photo_id=1, date_taken="4501-01-01 00:00:00.0"),
        yfcc_line(photo_id=2, date_taken="1800-01-01 00:00:00.0"),
        yfcc_line(photo_id=3, date_taken="2012-13-45 99:00:00.0"),
        yfcc_line(photo_id=4, date_taken="2005-06-07+08:09:10.0"),
        yfcc_line(photo_id=5, date_taken="2013-01-01 00:00:00.0"),  # after the 2012 upload
    ]
    _, rows = read_all(write(tmp_path / "f", lines))
    assert [row["date_taken"] for row in rows] == [None, None, None, dt.datetime(2005, 6, 7, 8, 9, 10), None]
    assert rows[0]["date_taken_raw"] == "4501-01-01 00:00:00.0"
    assert all(row["malformed"] is None for row in rows)


def test_out_of_range_coordinates_are_nulled(tmp_path):
    _, rows = read_all(write(tmp_path / "f", [yfcc_line(longitude="-200.5", latitude="95")]))
    assert rows[0]["longitude"] is None and rows[0]["latitude"] is None and rows[0]["malformed"] is None


def test_video_marker(tmp_path):
    _, rows = read_all(write(tmp_path / "f", [yfcc_line(photo_id=1, marker="1", extension="mp4")]))
    assert rows[0]["is_video"] is True


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.from_regex(r"[%+a-f0-9 ]{0,9}")))
def test_percent_decode_matches_unquote_plus(values):
    decoded, bad = to_utf8(percent_decode(pa.array(values, pa.string())))
    expected = [unquote_plus(value, errors="strict") if _strict_ok(value) else None for value in values]
    for got, is_bad, want in zip(decoded.to_pylist(), bad.tolist(), expected, strict=True):
        if want is None:
            assert is_bad and got == ""
        else:
            assert not is_bad and got == want


def _strict_ok(value):
    try:
        unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


SPACES = " \t\n\x1c\x1f\x7f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u205f\u3000\u3001é日a"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=15) | st.text(alphabet=SPACES, max_size=10)))
def test_columnar_clean_text_matches_core(values):
    assert clean_text(pa.array(values, pa.string())).to_pylist() == [clean_text_one(value) for value in values]


def test_parallel_chunk_parsing_keeps_order(tmp_path):
    lines = [yfcc_line("original", photo_id=5000 + i) if i % 97 else "bad\tline" for i in range(3000)]
    path = write(tmp_path / "f.bz2", lines, "bz2")
    tables = {n: pa.concat_tables(list(YfccReader(path, chunk_bytes=16 << 10, workers=n))) for n in (1, 3)}
    assert tables[1].equals(tables[3])
    assert tables[1].column("line").to_pylist() == list(range(1, 3001))


COORDINATE = st.text(alphabet="0123456789.-+eE x", max_size=8) | st.from_regex(r"-?[0-9]{1,3}\.[0-9]{1,6}")


@settings(max_examples=300, deadline=None)
@given(st.lists(COORDINATE))
def test_coordinate_check_matches_parse_coordinate(values):
    assert coordinate_unparsable(pa.array(values, pa.string())).tolist() == (
        parse_coordinate(pa.array(values, pa.string()), 180.0)[1].to_pylist()
    )


def test_coordinate_check_long_values():
    """Values of 31 bytes and more take the regex path (the packed byte counts hold up to 30 per kind)."""
    values = ["1" * n for n in (29, 30, 31, 32, 40)] + ["-" + "1" * 30, "." * 31 + "1", "-" * 40, "1." + "2" * 35]
    values += ["." * 40, "1" + "." * 33, "-1." + "0" * 60]
    assert coordinate_unparsable(pa.array(values, pa.string())).tolist() == (
        parse_coordinate(pa.array(values, pa.string()), 180.0)[1].to_pylist()
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="%+8aFzé09C3", max_size=10)))
def test_bad_utf8_after_decoding_matches_a_full_decode(values):
    array = pa.array(values, pa.string())
    assert decodes_to_bad_utf8(array).tolist() == to_utf8(percent_decode(array))[1].tolist()


def test_piece_buffers_are_refilled_once_given_back(tmp_path):
    """Pieces handed back are refilled (no new buffer per piece); pieces still held are never overwritten."""
    from passkit.sources.streams import DecompressedStream, PieceBuffers, prefetch_lines

    lines = [f"{i}\t{'x' * (i % 50)}" for i in range(5000)]
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines) + "\n")
    buffers = PieceBuffers()
    seen: dict[int, object] = {}  # holds every buffer, so that no id is reused
    text = []
    with DecompressedStream(path) as stream:
        held = None
        for number, (piece, _) in enumerate(prefetch_lines(stream, 4096, buffers=buffers)):
            seen[id(piece.obj)] = piece.obj
            if held is not None:
                assert bytes(held[0]) == held[1]  # the held piece was not refilled meanwhile
                buffers.give(held[0])
            held = (piece, bytes(piece)) if number % 2 else None
            if held is None:
                text.append(bytes(piece))
                buffers.give(piece)
            else:
                text.append(held[1])
    assert b"".join(text).decode().splitlines() == lines
    assert len(seen) <= 8  # reused: the file has ~30 pieces
