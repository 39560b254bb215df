import gzip
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from passkit.core.keys import make_key
from passkit.selection import open_source, run_select
from passkit.sources.folder import FolderReader
from passkit.sources.tables import TableFormatError, TableReader
from passkit.stages.select import SelectConfig

ROWS = [
    {
        "image_url": "https://farm1.staticflickr.com/1/101_a.jpg",
        "owner_name": "Ana Lima",
        "license": "4",
        "page": "https://www.flickr.com/photos/ana/101/",
        "title": "Harbour",
        "lat": "38.7",
        "lon": "-9.1",
    },
    {
        "image_url": "https://example.org/b.jpg",
        "owner_name": "Bo",
        "license": "https://creativecommons.org/licenses/by-nc/4.0/",
        "page": "https://example.org/b",
        "title": "",
        "lat": "",
        "lon": "",
    },
    {
        "image_url": "not a url",
        "owner_name": "Cy",
        "license": "CC BY 4.0",
        "page": "https://example.org/c",
        "title": "",
        "lat": "",
        "lon": "",
    },
]
MAPPING = {"url": "image_url", "creator": "owner_name", "page_url": "page", "latitude": "lat", "longitude": "lon"}


def url_key(url):
    return make_key("url", hashlib.blake2b(url.encode(), digest_size=8).hexdigest())


def write_delimited(path, rows, delimiter, extra_lines=()):
    names = list(rows[0])
    lines = [delimiter.join(names)] + [delimiter.join(row[n] for n in names) for row in rows] + list(extra_lines)
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def rows_of(reader):
    return pa.concat_tables(list(reader)).to_pylist()


@pytest.mark.parametrize("name", ["pool.csv", "pool.tsv", "pool.csv.gz", "pool.parquet", "pool.jsonl", "pool.jsonl.gz"])
def test_every_table_format_gives_the_same_records(tmp_path, name):
    path = tmp_path / name
    if ".csv" in name or ".tsv" in name:
        write_delimited(path, ROWS, "\t" if ".tsv" in name else ",")
    elif name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    else:
        data = "".join(json.dumps(row) + "\n" for row in ROWS).encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    rows = rows_of(TableReader(path, MAPPING))
    first = rows[0]
    assert first["key"] == url_key(ROWS[0]["image_url"])
    assert (first["license"], first["license_url"]) == ("CC-BY-2.0", "https://creativecommons.org/licenses/by/2.0/")
    assert (first["creator"], first["title"], first["latitude"], first["longitude"]) == (
        "Ana Lima",
        "Harbour",
        38.7,
        -9.1,
    )
    assert first["page_url"] == "https://www.flickr.com/photos/ana/101/" and first["malformed"] is None
    assert rows[1]["license"] == "CC-BY-NC-4.0" and rows[1]["latitude"] is None
    assert rows[2]["malformed"] == "url is missing or not an http(s) or file:// URL"
    expected_lines = [1, 2, 3] if name.startswith("pool.parquet") or ".jsonl" in name else [2, 3, 4]
    assert [row["line"] for row in rows] == expected_lines


def test_csv_bad_rows_are_malformed_with_their_line(tmp_path):
    path = write_delimited(
        tmp_path / "pool.csv",
        ROWS[:1],
        ",",
        extra_lines=[
            "only,three,fields",
            "",
            ",".join(["https://x.org/2.jpg", "Di", "4", "https://x.org/2", "", "", ""]),
        ],
    )
    rows = rows_of(TableReader(path, MAPPING))
    assert [(row["line"], row["malformed"]) for row in rows] == [
        (2, None),
        (3, "expected 7 fields, found 3"),
        (4, "url is missing or not an http(s) or file:// URL"),  # an empty line
        (5, None),
    ]
    assert rows[3]["key"] == url_key("https://x.org/2.jpg")


def test_jsonl_bad_lines_and_non_utf8_csv(tmp_path):
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b'{"url": "https://x.org/1.jpg", "license": 4}\n{broken\n[1, 2]\n{"url": "https://x.org/2.jpg"}\n')
    rows = rows_of(TableReader(path))
    assert [row["line"] for row in rows] == [1, 2, 3, 4]
    assert rows[0]["license"] == "CC-BY-2.0" and rows[0]["malformed"] is None
    assert "JSON" in rows[1]["malformed"] and "JSON" in rows[2]["malformed"]
    csv_path = tmp_path / "latin.csv"
    csv_path.write_bytes(b"url,creator\nhttps://x.org/1.jpg,Jos\xe9\nhttps://x.org/2.jpg,Ok\n")
    rows = rows_of(TableReader(csv_path))
    assert rows[0]["malformed"] == "text field is not valid UTF-8" and rows[1]["malformed"] is None


def test_id_column_and_source_name(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("id,url\nabc_1,https://x.org/1.jpg\nWeird.ID,https://x.org/2.jpg\n")
    rows = rows_of(TableReader(path, source="mypool"))
    assert [row["key"] for row in rows] == ["mypool-abc_1", make_key("mypool", "Weird.ID")]


def test_table_configuration_errors(tmp_path):
    path = tmp_path / "pool.csv"
    path.write_text("link,who\nhttps://x.org/1.jpg,a\n")
    with pytest.raises(TableFormatError, match="no url column"):
        TableReader(path)
    with pytest.raises(TableFormatError, match="not in the table"):
        TableReader(path, {"url": "nope"})
    with pytest.raises(TableFormatError, match="unknown field"):
        TableReader(path, {"link": "link"})
    assert TableReader(path, {"url": "link", "creator": "who"}).columns["creator"] == "who"


def test_folder_with_sidecars_and_attribution_csv(tmp_path):
    root = tmp_path / "My Photos"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.png", "d.jpg", "e.jpg"):
        Image.new("RGB", (8, 8)).save(root / name)
    (root / "a.json").write_text(
        json.dumps(
            {"creator": "Ana", "page_url": "https://x.org/a", "license": "CC BY 4.0", "title": "A", "latitude": 1.5}
        )
    )
    (root / "d.jpg.json").write_text("{not json")
    (root / "attribution.csv").write_text(
        "file,author,source_url,license\n"
        "b.jpg,Bo,https://x.org/b,https://creativecommons.org/licenses/by/3.0/\n"
        "sub/c.png,Cy,https://x.org/c,CC-BY-NC-4.0\n"
        "gone.jpg,Zed,https://x.org/z,CC BY 4.0\n"
    )
    reader = open_source(root)
    assert isinstance(reader, FolderReader) and reader.source == "my-photos"
    rows = {row["key"]: row for row in rows_of(reader)}
    assert len(rows) == 6
    a = rows["my-photos-a"]
    assert (a["creator"], a["license"], a["title"], a["latitude"]) == ("Ana", "CC-BY-4.0", "A", 1.5)
    assert a["url"] == (root / "a.jpg").resolve().as_uri()
    assert rows["my-photos-b"]["license"] == "CC-BY-3.0" and rows["my-photos-b"]["creator"] == "Bo"
    assert "not valid JSON" in rows["my-photos-d"]["malformed"]
    assert rows["my-photos-e"]["creator"] == "" and rows["my-photos-e"]["malformed"] is None
    missing = [row for row in rows.values() if row["source_file"] == "attribution.csv"]
    assert len(missing) == 1 and missing[0]["line"] == 4 and "gone.jpg" in missing[0]["malformed"]
    out = tmp_path / "candidates.parquet"
    summary = run_select([root], out, SelectConfig())
    assert summary.rows_in == 6 and summary.candidates == 2
    # c is NC; e has no attribution at all, so no license either: the policy check rejects it first.
    assert summary.by_reason == {"license:not-allowed": 2, "metadata:malformed": 2}


def test_cli_select_on_a_table_with_column_mapping(tmp_path):
    from typer.testing import CliRunner

    from passkit.cli import app

    path = write_delimited(tmp_path / "pool.csv", ROWS, ",")
    out = tmp_path / "c.parquet"
    args = ["select", str(path), "--out", str(out), "--source-name", "mine"]
    for name, column in MAPPING.items():
        args += ["--col", f"{name}={column}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    candidates = pq.read_table(out).to_pylist()
    assert [row["creator"] for row in candidates] == ["Ana Lima"]
    assert candidates[0]["key"].startswith("mine-")
    assert pq.read_table(tmp_path / "c.rejects.parquet").num_rows == 2
    bad = CliRunner().invoke(app, ["select", str(path), "--col", "url", "--out", str(out)])
    assert bad.exit_code == 2 and "FIELD=COLUMN" in bad.output


def test_url_tables_may_point_at_local_files(tmp_path):
    local = dict(ROWS[0], image_url="file:///srv/mirror/101_a.jpg")
    relative = dict(ROWS[0], image_url="mirror/101_a.jpg")
    path = write_delimited(tmp_path / "pool.csv", [local, relative], ",")
    rows = rows_of(TableReader(path, MAPPING))
    assert rows[0]["malformed"] is None and rows[0]["url"] == "file:///srv/mirror/101_a.jpg"
    assert rows[1]["malformed"] == "url is missing or not an http(s) or file:// URL"
