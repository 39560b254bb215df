"""select's fast paths against a row-by-row reference written from the YFCC100M column description.

The reader takes shortcuts on the common case (whole-chunk UTF-8/NUL/CR checks instead of per-line ones, records
the policy refuses read light, vectorised checks); these tests hold them to a plain per-line implementation on a
generated file with every kind of bad row, and to each other (light vs full reads, fast vs line-checked chunks,
small vs large chunks).
"""

import bz2
import re
from urllib.parse import quote_plus, unquote_plus

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.yfcc_helpers import ORIGINAL_FIELDS, photo_hash, yfcc_fields

from passkit.core.attribution import Attribution, clean_text
from passkit.core.keys import make_key
from passkit.core.licenses import LicensePolicy, reconcile_licenses
from passkit.selection import rejects_path_for, run_select
from passkit.sources.yfcc import ORIGINAL, SINGLE_FILE, YfccReader
from passkit.stages.select import SelectConfig, key_rank

COORDINATES = ("longitude", "latitude")
NUMBER = r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"
LICENSES = ["by", "by-sa", "by-nc", "by-nc-sa", "by-nd", "by", "by"]
# Each bad kind: (name, how the fields or the line are spoiled). Applied to every 37th record in turn.
BAD_KINDS = [
    "few-fields",
    "many-fields",
    "empty-line",
    "latin1-byte",
    "nul",
    "carriage-return",
    "longitude",
    "latitude",
    "date-uploaded",
    "marker",
    "photo-id-letters",
    "photo-id-too-long",
    "title-bad-escape",
    "nickname-bad-escape",
    "nsid-bad-escape",
    "hash-not-hex",
    "hash-mismatch",
    "video",
    "no-creator",
    "page-url",
    "license-url",
    "unknown-license",
    "duplicate",
    "bogus-dates",
    "coordinates-out-of-range",
    "padded-coordinates",
    "raw-utf8-description",
]


def make_lines(layout: str, count: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    lines: list[bytes] = []
    cc_by_ids: list[str] = []  # ids of good CC-BY records so far: duplicates repeat one of them
    for i in range(count):
        photo_id = 5_000_000 + i * 7
        creator = 0 if i % 5 == 0 else int(rng.integers(1, 40))  # creator 0 is prolific: the cap applies
        words = rng.choice(
            ["harbour", "été", "naïve", "dusk", "caf\u00e9", "tree", "x+y", "100%"], int(rng.integers(0, 4))
        )
        fields = yfcc_fields(
            photo_id=photo_id,
            nsid=f"{1000 + creator}@N0{creator % 8}",
            nickname=f"user {creator}",
            title=" ".join(words.tolist()),
            license=LICENSES[int(rng.integers(0, len(LICENSES)))],
            date_uploaded=str(1_300_000_000 + i),
        )
        kind = BAD_KINDS[(i // 37) % len(BAD_KINDS)] if i % 37 == 36 else "ok"
        raw_hash: str | None = None
        if kind == "longitude":
            fields["longitude"] = "east"
        elif kind == "latitude":
            fields["latitude"] = "9x"
        elif kind == "date-uploaded":
            fields["date_uploaded"] = "soon"
        elif kind == "marker":
            fields["marker"] = "7"
        elif kind == "photo-id-letters":
            fields["photo_id"] = f"x{photo_id}"
        elif kind == "photo-id-too-long":
            fields["photo_id"] = "9" * 21
        elif kind == "title-bad-escape":
            fields["title"] = "caf%E9"
        elif kind == "nickname-bad-escape":
            fields["user_nickname"] = "%C3"
        elif kind == "nsid-bad-escape":
            fields["user_nsid"] = "1%FF@N00"
        elif kind == "hash-not-hex":
            raw_hash = "not-a-hash"
        elif kind == "hash-mismatch":
            raw_hash = "0123456789abcdef0123456789abcdef"
        elif kind == "video":
            fields["marker"], fields["extension"] = "1", "mp4"
        elif kind == "no-creator":
            fields["user_nickname"] = ""
        elif kind == "page-url":
            fields["page_url"] = "ftp://flickr/1"
        elif kind == "license-url":
            fields["license_url"] = "not+a+url"
        elif kind == "unknown-license":
            fields["license_name"], fields["license_url"] = quote_plus("Some Other License"), ""
        elif kind == "duplicate":
            fields["photo_id"] = cc_by_ids[-3]
            fields["license_name"], fields["license_url"] = yfcc_fields(license="by")["license_name"], ""
        elif kind == "bogus-dates":
            fields["date_taken"] = "4501-01-01+00:00:00.0"
        elif kind == "coordinates-out-of-range":
            fields["longitude"], fields["latitude"] = "-200.5", "95"
        elif kind == "padded-coordinates":
            fields["longitude"], fields["latitude"] = " 12.5 ", "-3"
        elif kind == "raw-utf8-description":
            fields["description"] = "Überfahrt nach Köln"
        if kind == "ok" and fields["license_name"] == yfcc_fields(license="by")["license_name"]:
            cc_by_ids.append(fields["photo_id"])
        values = [fields[name] for name in ORIGINAL_FIELDS]
        if layout == "single-file":
            digest = photo_hash(fields["download_url"]) if raw_hash is None else raw_hash
            values = [str(i), values[0], digest, *values[1:]]
        line = "\t".join(values).encode()
        if kind == "few-fields":
            line = line.rsplit(b"\t", 3)[0]
        elif kind == "many-fields":
            line += b"\textra"
        elif kind == "empty-line":
            line = b""
        elif kind == "latin1-byte":
            line = line.replace(b"harbour", b"h\xe4rbour")
        elif kind == "nul":
            line = line.replace(b"harbour", b"har\x00bour")
        elif kind == "carriage-return":
            line = line.replace(b"harbour", b"har\rbour")
        lines.append(line)
    return lines


def reference(lines: list[bytes], layout: str, file_name: str, cfg: SelectConfig) -> dict[int, tuple[str, str]]:
    """(key, reason) per line number, one line at a time, from the column description; "" = admitted (before
    duplicates and the cap)."""
    columns = (SINGLE_FILE if layout == "single-file" else ORIGINAL).columns
    id_index = columns.index("photo_id")
    policy = LicensePolicy.parse(cfg.policy)
    outcome: dict[int, tuple[str, str]] = {}
    for number, raw in enumerate(lines, start=1):
        parts = raw.split(b"\t")
        raw_id = parts[id_index] if len(parts) > id_index else b""
        fallback = make_key("yfcc", f"{file_name}:{number}")
        key = f"yfcc-{raw_id.decode()}" if re.fullmatch(rb"[0-9]{1,20}", raw_id) else fallback
        malformed = (key, "metadata:malformed")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            outcome[number] = malformed
            continue
        if len(parts) != len(columns) or "\x00" in text or "\r" in text:
            outcome[number] = malformed
            continue
        f = dict(zip(columns, text.split("\t"), strict=True))
        try:
            decoded = {name: unquote_plus(f[name], errors="strict") for name in ("user_nsid", "user_nickname", "title")}
        except UnicodeDecodeError:
            decoded = None
        if (
            key == fallback
            or f["marker"] not in ("0", "1")
            or not all(
                re.fullmatch(NUMBER, f[name].strip()) or not f[name].strip() for name in ("longitude", "latitude")
            )
            or not (f["date_uploaded"] == "" or re.fullmatch(r"[0-9]{1,12}", f["date_uploaded"]))
            or ("photo_hash" in f and not re.fullmatch(r"[0-9a-f]{16,32}", f["photo_hash"]))
            or decoded is None
        ):
            outcome[number] = malformed
            continue
        license_id = reconcile_licenses([f["license_name"], f["license_url"]])
        attribution = Attribution.from_fields(
            creator=decoded["user_nickname"],
            title=decoded["title"],
            page_url=f["page_url"],
            license=license_id,
            license_url=f["license_url"],
        )
        if f["marker"] == "1":
            reason = "metadata:video"
        elif not policy.allows(license_id):
            reason = "license:not-allowed"
        elif attribution.check(require_title=cfg.require_title):
            reason = attribution.check(require_title=cfg.require_title)
        elif "photo_hash" in f and photo_hash(f["download_url"]) != f["photo_hash"]:
            reason = "metadata:malformed"
        else:
            reason = ""
        who = clean_text(decoded["user_nsid"]) or "name:" + clean_text(decoded["user_nickname"])
        outcome[number] = (key, reason or f"admitted:{who}")
    return outcome


def expected_outputs(outcome: dict[int, tuple[str, str]], cfg: SelectConfig) -> tuple[set, set]:
    """(candidate (key, line) set, reject (key, reason, line) set): the reference plus duplicates and the cap."""
    rejects = {(key, reason, line) for line, (key, reason) in outcome.items() if not reason.startswith("admitted:")}
    admitted = [
        (line, key, reason.removeprefix("admitted:"))
        for line, (key, reason) in sorted(outcome.items())
        if reason.startswith("admitted:")
    ]
    seen: set[str] = set()
    firsts = []
    for line, key, who in admitted:
        if key in seen:
            rejects.add((key, "dedup:exact", line))
        else:
            seen.add(key)
            firsts.append((line, key, who))
    ranks = key_rank(pa.array([key for _, key, _ in firsts], pa.string()), cfg.seed)
    by_creator: dict[str, list[tuple[int, int, str]]] = {}
    for (line, key, who), rank in zip(firsts, ranks.tolist(), strict=True):
        by_creator.setdefault(who, []).append((rank, line, key))  # the cap keeps the smallest ranks
    candidates = set()
    for rows in by_creator.values():
        for position, (_, line, key) in enumerate(sorted(rows)):
            if cfg.max_per_creator and position >= cfg.max_per_creator:
                rejects.add((key, "cap:creator", line))
            else:
                candidates.add((key, line))
    return candidates, rejects


class FullReads:
    """A YFCC reader without the policy hook: every record read in full (the reference for light reads)."""

    def __init__(self, reader: YfccReader) -> None:
        self.reader = reader
        self.path = reader.path

    def __iter__(self):
        return iter(self.reader)

    @property
    def rows(self) -> int:
        return self.reader.rows

    @property
    def problem(self) -> str:
        return self.reader.problem


def write_source(tmp_path, layout: str, count: int = 3000):
    lines = make_lines(layout, count)
    lines.append(lines[10][: len(lines[10]) // 2])  # truncated last line, no newline
    path = tmp_path / "yfcc100m_dataset.bz2"
    path.write_bytes(bz2.compress(b"\n".join(lines)))
    return path, lines


@pytest.mark.parametrize("layout", ["single-file", "original"])
def test_select_matches_the_row_by_row_reference(tmp_path, layout):
    path, lines = write_source(tmp_path, layout)
    cfg = SelectConfig(max_per_creator=40)
    outcome = reference(lines, layout, path.name, cfg)
    reasons = {reason.split(":")[0] for _, reason in outcome.values()}
    assert {"metadata", "license", "attribution", "admitted"} <= reasons
    tables = {}
    for name, reader in (
        ("light", YfccReader(path, chunk_bytes=64 << 10)),
        ("full", FullReads(YfccReader(path, chunk_bytes=64 << 10))),
    ):
        out = tmp_path / name / "candidates.parquet"
        summary = run_select([reader], out, cfg)
        assert summary.balanced and summary.rows_in == len(lines)
        tables[name] = (pq.read_table(out), pq.read_table(rejects_path_for(out)))
    # Reading refused records light changes nothing, not even the order of the rows.
    assert tables["light"][0].equals(tables["full"][0]) and tables["light"][1].equals(tables["full"][1])
    candidates, rejects = tables["light"]
    want_candidates, want_rejects = expected_outputs(outcome, cfg)
    got_candidates = set(zip(candidates.column("key").to_pylist(), candidates.column("line").to_pylist(), strict=True))
    got_rejects = set(
        zip(*(rejects.column(name).to_pylist() for name in ("key", "reason", "line")), strict=True)  # type: ignore[call-overload]
    )
    assert {"dedup:exact", "cap:creator"} <= {reason for _, reason, _ in want_rejects}
    assert got_candidates == want_candidates
    assert got_rejects == want_rejects
    assert len(got_rejects) == rejects.num_rows  # exactly one row per rejected line
    malformed = rejects.filter(pc.equal(rejects.column("reason"), "metadata:malformed"))
    assert all(malformed.column("detail").to_pylist())  # every malformed row says why


@pytest.mark.parametrize("layout", ["single-file", "original"])
def test_fast_and_line_checked_chunks_read_the_same(tmp_path, layout):
    path, lines = write_source(tmp_path, layout, count=2000)
    policy = LicensePolicy.parse("cc-by")
    variants = {}
    for name, chunk, checked in (
        ("fast", 64 << 10, False),
        ("checked", 64 << 10, True),
        ("small-chunks", 4 << 10, False),
        ("one-chunk", 16 << 20, False),
    ):
        reader = YfccReader(path, chunk_bytes=chunk)
        reader._force_line_checks = checked
        variants[name] = pa.concat_tables(list(reader))
        assert reader.rows == len(lines) and not reader.problem
    for name, table in variants.items():
        assert table.equals(variants["fast"]), name
    assert variants["fast"].column("line").to_pylist() == list(range(1, len(lines) + 1))
    # Light reads: the same records, with the columns a reject needs; the rest only where the policy admits.
    light = pa.concat_tables(list(YfccReader(path, chunk_bytes=64 << 10).records(policy)))
    full = variants["fast"]
    for name in ("key", "source", "photo_id", "license", "creator_id", "is_video", "malformed", "source_file", "line"):
        assert light.column(name).equals(full.column(name)), name
    refused = pc.invert(pc.is_in(full.column("license"), pa.array(["CC-BY-2.0"])))
    refused = pc.or_(refused, pc.or_(pc.is_valid(full.column("malformed")), full.column("is_video")))
    assert pc.all(pc.or_(pc.invert(refused), pc.is_null(light.column("url")))).as_py()
    admitted = pc.invert(refused)
    assert pc.sum(admitted).as_py() > 100 and pc.sum(refused).as_py() > 100
    assert light.filter(admitted).equals(full.filter(admitted))


def test_a_line_longer_than_a_parse_block_reads_fine(tmp_path):
    lines = make_lines("original", 30)
    fields = dict(zip(ORIGINAL_FIELDS, lines[3].decode().split("\t"), strict=True))
    fields["description"] = "long+" * 600_000  # 3 MB: longer than the CSV parser's block
    lines[3] = "\t".join(fields[name] for name in ORIGINAL_FIELDS).encode()
    path = tmp_path / "yfcc100m_dataset-0"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rows = pa.concat_tables(list(YfccReader(path))).to_pylist()
    assert len(rows) == 30 and rows[3]["malformed"] is None and rows[3]["key"] == f"yfcc-{fields['photo_id']}"
