"""The compiled YFCC scanner against the pyarrow reference path: identical tables, rejects and reports.

Both paths read the same generated files (both layouts, every kind of bad row, pieces cut inside long lines and
multi-byte characters, truncated streams); random line mutations (hypothesis) look for any disagreement.
"""

import bz2
import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.test_select_paths import make_lines
from tests.yfcc_helpers import ORIGINAL_FIELDS, photo_hash, yfcc_fields

from passkit.core.licenses import LicensePolicy
from passkit.selection import rejects_path_for, run_select
from passkit.sources.columns import web_url_mask
from passkit.sources.compiled import load_scanner
from passkit.sources.yfcc import YfccReader
from passkit.stages.select import SelectConfig, photo_hash_of, photo_hashes_of

scanner = load_scanner("auto")
pytestmark = pytest.mark.skipif(scanner is None, reason="the compiled YFCC scanner is not built")

POLICIES = [None, "cc-by", "CC-BY-NC-2.0"]

# Field values that only the reference path decides (the scanner hands such lines over) and values at the edges
# of the scanner's own checks.
ODD_VALUES = {
    "longitude": [" 12.5", "12.5 ", "\u00a012.5", "1e5", "-.5", "+3.", ".", "-", "1.2.3", "0x10", "１２", "1e", "E5"],
    "latitude": ["-0", "45.", "  ", "nan", "inf", "4\u00a05", "+.5e-3"],
    "user_nsid": ["a+b", "a%20%20b", "%20a", "a%09b", "caf%C3%A9", "%E2%80%83x", "x%7F", "%FF", "a%2", "%%41"],
    "user_nickname": ["%C3", "%C3%A9", "%ED%A0%80", "%F0%9F%98%80", "%F4%90%80%80", "%E0%80%80", "+%2B+"],
    "title": ["%80", "caf%E9", "%C2%A0%C2%A0x", "%%C3%A9", "%C3%A"],
    "date_uploaded": ["", "1234567890123", "12a", "-1", "0"],
    "marker": ["", "01", "1 ", "2"],
    "photo_id": ["", "0", "1" * 20, "1" * 21, "12a", "١٢"],
    "license_name": ["", "Attribution+License", "Attribution License", "No+known+copyright+restrictions"],
    "license_url": [
        "",
        "https://creativecommons.org/licenses/by/4.0/",
        "http://creativecommons.org/licenses/by-nc/2.0/",
    ],
}
# Whole-line damage: (name, bytes that replace "harbour" in the description).
LINE_DAMAGE = [
    b"h\xe4rbour",  # invalid continuation
    b"h\x80rbour",  # invalid start byte
    b"h\xc0\xafrbour",  # overlong
    b"h\xed\xa0\x80rbour",  # surrogate
    b"h\xf4\x90\x80\x80rbour",  # beyond U+10FFFF
    b"h\xe2\x82rbour",  # truncated 3-byte sequence
    b"har\x00bour",
    b"har\rbour",
    b"har\tbour",  # one field too many
    "hårbour €".encode(),  # fine: raw UTF-8
]


def single_line(layout: str, number: int, **overrides: str) -> bytes:
    fields = yfcc_fields(photo_id=7_000_000 + number)
    fields.update(overrides)
    values = [fields[name] for name in ORIGINAL_FIELDS]
    if layout == "single-file":
        values = [str(number), values[0], photo_hash(fields["download_url"]), *values[1:]]
    return "\t".join(values).encode()


def odd_lines(layout: str) -> list[bytes]:
    lines = []
    for name, values in ODD_VALUES.items():
        for value in values:
            lines.append(single_line(layout, len(lines), **{name: value}))
    for damage in LINE_DAMAGE:
        lines.append(single_line(layout, len(lines)).replace(b"harbour", damage))
    lines += [b"", b"\t", b"\xff", single_line(layout, len(lines)) + b"\t"]
    # Ends of lines inside multi-byte sequences.
    lines.append(single_line(layout, len(lines)) + b"\xc3")
    lines.append(single_line(layout, len(lines)) + b"\xf0\x9f\x98")
    # A long line: pieces are cut inside it and inside its multi-byte characters.
    lines.append(single_line(layout, len(lines), title="é" * 3000).replace(b"harbour", "é€😀".encode() * 2000))
    return lines


def read(path, scanner_choice: str, policy: str | None, chunk_bytes: int, force_lines: bool = False):
    # The standard library's bz2: where a damaged stream stops does not depend on timing.
    reader = YfccReader(path, chunk_bytes=chunk_bytes, scanner=scanner_choice, decompressor="python")  # type: ignore[arg-type]
    reader._force_line_checks = force_lines
    tables = list(reader if policy is None else reader.records(LicensePolicy.parse(policy)))
    return reader, pa.concat_tables(tables)


def assert_same(path, chunk_sizes=(4 << 10, 16 << 20), policies=POLICIES):
    """The scanner's tables equal the reference path's, for each piece size and policy (and those of the
    reference path's line-by-line checks, at the largest piece size)."""
    for chunk in chunk_sizes:
        for policy in policies:
            compiled, got = read(path, "c", policy, chunk)
            assert compiled.scanner == "c"
            for force in (False, True) if chunk == chunk_sizes[-1] else (False,):
                reference, want = read(path, "python", policy, chunk, force)
                assert reference.scanner == "python"
                assert got.schema == want.schema
                if not got.equals(want):
                    for name in got.column_names:
                        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
                        diff = [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y][:3]
                        assert not diff, f"chunk {chunk}, policy {policy}, column {name}: {diff}"
                assert (compiled.rows, compiled.problem, compiled.layout) == (
                    reference.rows,
                    reference.problem,
                    reference.layout,
                )


@pytest.mark.parametrize("layout", ["original", "single-file"])
def test_generated_pool_with_every_bad_kind(tmp_path, layout):
    path = tmp_path / "yfcc100m_dataset"
    path.write_bytes(b"\n".join(make_lines(layout, 1200, seed=3)) + b"\n")
    assert_same(path)


@pytest.mark.parametrize("layout", ["original", "single-file"])
def test_odd_values_and_damaged_lines(tmp_path, layout):
    path = tmp_path / "yfcc100m_dataset"
    # Good lines first: the layout is detected from the data.
    good = [single_line(layout, 100_000 + i) for i in range(30)]
    path.write_bytes(b"\n".join(good + odd_lines(layout)) + b"\n")
    assert_same(path, chunk_sizes=(1 << 10, 4 << 10, 16 << 20))


@pytest.mark.parametrize("ending", [b"", b"\xc3", b"\t12", b"\r"])
def test_truncated_last_line(tmp_path, ending):
    path = tmp_path / "yfcc100m_dataset"
    lines = [single_line("single-file", i) for i in range(40)]
    path.write_bytes(b"\n".join(lines) + ending)  # no newline at the end
    assert_same(path, chunk_sizes=(2 << 10, 16 << 20))
    _, table = read(path, "c", None, 16 << 20)
    last = table.to_pylist()[-1]
    if ending:
        assert last["malformed"].endswith("(last line has no newline: file truncated?)")
    else:
        assert last["malformed"] is None


def test_truncated_bz2_stream(tmp_path):
    data = b"\n".join(make_lines("single-file", 4000, seed=5)) + b"\n"
    path = tmp_path / "yfcc100m_dataset.bz2"
    compressed = bz2.compress(data, 1)
    path.write_bytes(compressed[: len(compressed) * 2 // 3])
    assert_same(path, chunk_sizes=(64 << 10,), policies=[None, "cc-by"])
    reader, _ = read(path, "c", "cc-by", 64 << 10)
    assert "rows read before it" in reader.problem


def test_select_outputs_are_identical(tmp_path, monkeypatch):
    path = tmp_path / "yfcc100m_dataset"
    path.write_bytes(b"\n".join(make_lines("single-file", 2000, seed=9) + odd_lines("single-file")) + b"\n")
    outputs = {}
    for choice in ("c", "python"):
        monkeypatch.setenv("PASSKIT_YFCC_SCANNER", choice)
        out = tmp_path / choice / "candidates.parquet"
        summary = run_select([path], out, SelectConfig(max_per_creator=5))
        outputs[choice] = (pq.read_table(out), pq.read_table(rejects_path_for(out)), summary.by_reason)
    assert outputs["c"][0].equals(outputs["python"][0])
    assert outputs["c"][1].equals(outputs["python"][1])
    assert outputs["c"][2] == outputs["python"][2]
    assert outputs["c"][0].num_rows > 100


def test_scanner_choice_from_the_environment(monkeypatch, tmp_path):
    path = tmp_path / "yfcc100m_dataset"
    path.write_bytes(single_line("original", 1) + b"\n")
    monkeypatch.setenv("PASSKIT_YFCC_SCANNER", "python")
    assert YfccReader(path).scanner == "python"
    monkeypatch.setenv("PASSKIT_YFCC_SCANNER", "c")
    assert YfccReader(path).scanner == "c"
    monkeypatch.setenv("PASSKIT_YFCC_SCANNER", "fast")
    with pytest.raises(ValueError, match="PASSKIT_YFCC_SCANNER"):
        YfccReader(path)


def test_compiled_photo_hashes_match_md5():
    values = ["", "a", "x" * 55, "y" * 56, "z" * 63, "w" * 64, "v" * 119, "é" * 200, None]
    values += [f"http://farm{i % 9}.staticflickr.com/{i}/{i * 7}_{i:x}.jpg" for i in range(500)]
    hashes = photo_hashes_of(pa.array(values, pa.string())).to_pylist()
    assert hashes == [photo_hash_of(value or "") for value in values]
    assert hashes[1] == "".join(f"{byte:x}" for byte in hashlib.md5(b"a").digest())


FIELD_BYTES = st.sampled_from(
    [
        *(b"0", b"9", b"a", b"f", b"%", b"+", b" ", b".", b"-", b"e", b"\t", b"\r", b"\x00", b"\xc3", b"\xa9", b"\xff"),
        *(b"%C3", b"%A9", b"%FF", b"%20", b"\xe2\x80\x83", b"\xc2\xa0", "é".encode()),
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    layout=st.sampled_from(["original", "single-file"]),
    edits=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 24), st.lists(FIELD_BYTES, max_size=6)), max_size=12),
    cut=st.booleans(),
)
def test_random_field_damage(tmp_path_factory, layout, edits, cut):
    lines = [single_line(layout, i).split(b"\t") for i in range(40)]
    for row, field, parts in edits:
        if row >= 5:  # the first lines stay good: the layout is detected from them
            lines[row][field % len(lines[row])] = b"".join(parts)
    data = b"\n".join(b"\t".join(fields) for fields in lines)
    path = tmp_path_factory.mktemp("fuzz") / "yfcc100m_dataset"
    path.write_bytes(data if cut else data + b"\n")
    assert_same(path, chunk_sizes=(1 << 10, 16 << 20), policies=[None, "cc-by"])


URL_TEXT = st.text(alphabet=list("hHtTpPsS:/@?#.-_ \t\x0b\x0c\n\rabé"), max_size=16)
URL_LIKE = st.builds("".join, st.tuples(st.sampled_from(["http://", "HTTPS://", "https:/"]), URL_TEXT))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(URL_TEXT | st.builds("".join, st.tuples(st.sampled_from(["http://", "HTTPS://", "https:/"]), URL_TEXT)))
)
def test_compiled_web_url_check_matches_the_regex(values):
    array = pa.array(values, pa.string())
    assert web_url_mask(array).tolist() == web_url_mask(array, compiled=False).tolist()
