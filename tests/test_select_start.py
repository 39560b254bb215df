"""select's early start: lbzip2 started before the imports, the sniff read from its output; key ranks in compiled
code; the row groups of its outputs. Each must give exactly what the plain path gives."""

import bz2
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.yfcc_helpers import yfcc_line

from passkit.selection import SourceError, _RowGroups, open_source, rejects_path_for, run_select
from passkit.sources.compiled import load_scanner
from passkit.sources.specs import start_source
from passkit.sources.streams import DecompressedStream
from passkit.sources.yfcc import YfccReader
from passkit.stages.select import SelectConfig, _key_rank_numpy, key_rank

needs_lbzip2 = pytest.mark.skipif(shutil.which("lbzip2") is None, reason="no lbzip2")


def _lines(count: int, layout: str = "single-file") -> list[str]:
    licenses = ["by", "by-sa", "by-nc", "by"]
    return [
        yfcc_line(
            layout, i + 1, photo_id=1000 + i, nsid=f"{i % 40}@N00", license=licenses[i % 4], title=f"t{i}" * (i % 9)
        )
        for i in range(count)
    ]


def _bz2_file(path, lines: list[str]):
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    return path


@pytest.mark.parametrize("decompressor", ["python", pytest.param("lbzip2", marks=needs_lbzip2)])
def test_read_ahead_and_peek_return_every_byte_once_in_order(tmp_path, decompressor):
    text = ("\n".join(_lines(4000)) + "\n").encode()
    path = tmp_path / "f.bz2"
    path.write_bytes(bz2.compress(text))
    with DecompressedStream(path, decompressor) as stream:
        stream.start_reading(limit=300_000)  # less than the file: the rest comes from the decompressor
        head = stream.peek(1000)
        assert stream.peek(100) == head[:100] == text[:100]
        assert stream.peek(500_000) == text[:500_000]  # more than was read ahead
        pieces = []
        while piece := stream.read(77_777):
            pieces.append(piece)
    assert b"".join(pieces) == text and head == text[:1000]
    assert stream.bytes_read == len(text) and not stream.problem


@needs_lbzip2
def test_closing_a_stream_that_reads_ahead_stops_lbzip2(tmp_path):
    path = _bz2_file(tmp_path / "f.bz2", _lines(20000))
    stream = DecompressedStream(path)
    stream.start_reading(limit=1 << 12)  # fills at once; lbzip2 then blocks on the full pipe
    assert stream.peek(10)
    process = stream._process
    stream.close()
    assert process is not None and process.poll() is not None


@pytest.mark.parametrize("decompressor", ["python", pytest.param("lbzip2", marks=needs_lbzip2)])
def test_truncated_stream_read_ahead_reports_the_problem(tmp_path, decompressor):
    text = ("\n".join(_lines(30000, "original")) + "\n").encode()
    data = bz2.compress(text)
    path = tmp_path / "cut.bz2"
    path.write_bytes(data[: int(len(data) * 0.7)])
    with DecompressedStream(path, decompressor) as stream:
        stream.start_reading(limit=64 << 20)  # more than the file: the read-ahead meets the damage
        read = b"".join(iter(lambda: stream.read(1 << 20), b""))
        assert "damaged or truncated" in stream.problem
    # What was decoded before the damage (lbzip2 stops after a varying number of whole blocks from run to run).
    assert 0 < len(read) < len(text) and text.startswith(read)


@needs_lbzip2
def test_start_source_only_for_bz2_files_that_may_be_yfcc(tmp_path):
    yfcc = _bz2_file(tmp_path / "yfcc100m_dataset", _lines(50))
    plain = tmp_path / "plain.tsv.txt"
    plain.write_text("\n".join(_lines(5)) + "\n")
    table = _bz2_file(tmp_path / "urls.csv.bz2", ["url,license", "http://a/b.jpg,CC-BY-4.0"])
    for spec in (plain, table, f"table:{yfcc}", f"folder:{tmp_path}", tmp_path, tmp_path / "missing.bz2"):
        assert start_source(spec) is None, spec
    for spec in (yfcc, f"yfcc:{yfcc}"):
        stream = start_source(spec)
        assert stream is not None and stream.decompressor == "lbzip2"
        stream.close()


@needs_lbzip2
def test_open_source_reads_the_started_stream_once_and_stops_one_it_does_not_use(tmp_path):
    lines = _lines(3000)
    yfcc = _bz2_file(tmp_path / "yfcc100m_dataset", lines)
    stream = start_source(yfcc)
    reader = open_source(yfcc, stream=stream)
    assert isinstance(reader, YfccReader) and reader._stream is stream
    early = pa.concat_tables(list(reader))
    assert reader._stream is None  # a second pass opens the file again
    again = pa.concat_tables(list(reader))
    plain = pa.concat_tables(list(YfccReader(yfcc, decompressor="python")))
    assert early.equals(plain) and again.equals(plain) and early.num_rows == len(lines)

    junk = _bz2_file(tmp_path / "notes", ["hello", "world"])
    stream = start_source(f"yfcc:{junk}")
    assert stream is not None
    with pytest.raises(SourceError, match="not YFCC100M"):
        open_source(f"yfcc:{junk}", stream=stream)
    assert stream._process is not None and stream._process.poll() is not None  # stopped


@needs_lbzip2
def test_cli_select_with_the_early_start_writes_what_the_library_writes(tmp_path):
    yfcc = _bz2_file(tmp_path / "yfcc100m_dataset", [*_lines(3000), "garbage without tabs"])
    cli_out, lib_out = tmp_path / "cli" / "c.parquet", tmp_path / "lib" / "c.parquet"
    code = f"from passkit.cli import app\napp(['select', {str(yfcc)!r}, '--out', {str(cli_out)!r}])"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    run_select([YfccReader(yfcc, decompressor="python")], lib_out, SelectConfig())
    for out in (cli_out, lib_out):
        assert pq.read_table(out).num_rows > 0
    assert pq.read_table(cli_out).equals(pq.read_table(lib_out))
    assert pq.read_table(rejects_path_for(cli_out)).equals(pq.read_table(rejects_path_for(lib_out)))


def test_row_groups_keep_order_and_sizes_and_raise_writer_errors(tmp_path):
    schema = pa.schema([("n", pa.int64())])
    path = tmp_path / "t.parquet"
    with _RowGroups(pq.ParquetWriter(path, schema), rows=1000) as groups:
        for start in range(0, 5500, 300):
            groups.write_table(pa.table({"n": range(start, min(start + 300, 5500))}, schema=schema))
    written = pq.ParquetFile(path)
    assert pq.read_table(path).column("n").to_pylist() == list(range(5500))
    sizes = [written.metadata.row_group(i).num_rows for i in range(written.num_row_groups)]
    assert sizes == [1200] * 4 + [700]

    other = pa.table({"n": pa.array(["not a number"])})
    writer = pq.ParquetWriter(tmp_path / "bad.parquet", schema)
    with pytest.raises(ValueError, match="schema"), _RowGroups(writer, rows=1) as groups:
        groups.write_table(other)
        groups.write_table(other)


@pytest.mark.skipif(load_scanner() is None, reason="compiled scanner not built")
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=50),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=5),
)
def test_compiled_key_ranks_match_numpy(values, seed, offset):
    array = pa.array(values, pa.string()).slice(min(offset, len(values)))
    assert np.array_equal(key_rank(array, seed), _key_rank_numpy(array, seed))
