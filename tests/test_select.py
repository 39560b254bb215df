import bz2
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from tests.yfcc_helpers import photo_hash, yfcc_line
from typer.testing import CliRunner

from passkit import cli
from passkit.cli import app
from passkit.core.attribution import Attribution
from passkit.core.keys import is_valid_key
from passkit.core.reasons import is_valid_reason
from passkit.selection import SourceError, open_source, rejects_path_for, run_select
from passkit.sources.schema import pool_rows
from passkit.stages.select import (
    SelectConfig,
    cap_per_creator,
    first_occurrences,
    key_rank,
    photo_hash_of,
    select_batch,
)

CONTRACT_COLUMNS = [
    "key",
    "source",
    "photo_id",
    "url",
    "page_url",
    "license",
    "license_url",
    "creator",
    "title",
    "date_taken",
    "latitude",
    "longitude",
]


def pool(**overrides):
    row = {
        "key": "yfcc-1",
        "source": "yfcc",
        "photo_id": "1",
        "url": "http://farm1.staticflickr.com/1/1_a.jpg",
        "page_url": "http://www.flickr.com/photos/x/1/",
        "license": "CC-BY-2.0",
        "license_url": "http://creativecommons.org/licenses/by/2.0/",
        "creator": "someone",
        "creator_id": "1@N00",
        "title": "t",
        "line": 1,
    }
    row.update(overrides)
    return row


def test_photo_hash_matches_the_release_format():
    url = "http://farm8.staticflickr.com/7205/6985418911_df7747990d.jpg"
    assert photo_hash_of(url) == photo_hash(url)


def test_reasons_follow_the_documented_priority():
    rows = [
        pool(key="k-ok"),
        pool(key="k-malformed", malformed="bad line", is_video=True, license="ARR"),
        pool(key="k-video", is_video=True, license="ARR"),
        pool(key="k-nc", license="CC-BY-NC-2.0", creator=""),
        pool(key="k-unknown", license="unknown", license_url=""),
        pool(key="k-nocreator", creator="", page_url="not a url"),
        pool(key="k-hash-ok", photo_hash=photo_hash_of(pool()["url"])),
        pool(key="k-hash-bad", photo_hash="0123456789abcdef0123456789abcdef"),
        pool(key="k-hash-ignored", license="ARR", photo_hash="00"),
    ]
    result = select_batch(pool_rows(rows), SelectConfig())
    got = dict(zip(result.rows.column("key").to_pylist(), result.rows.column("reason").to_pylist(), strict=True))
    assert got == {
        "k-ok": "",
        "k-malformed": "metadata:malformed",
        "k-video": "metadata:video",
        "k-nc": "license:not-allowed",
        "k-unknown": "license:not-allowed",
        "k-nocreator": "attribution:incomplete:creator,page_url",
        "k-hash-ok": "",
        "k-hash-bad": "metadata:malformed",
        "k-hash-ignored": "license:not-allowed",
    }
    assert result.kept.column("key").to_pylist() == ["k-ok", "k-hash-ok"]
    details = dict(zip(result.rows.column("key").to_pylist(), result.rows.column("detail").to_pylist(), strict=True))
    assert details["k-malformed"] == "bad line" and "MD5" in details["k-hash-bad"] and details["k-ok"] is None
    result.check([row["key"] for row in rows], "select")  # one valid manifest row per input


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"creator": " "},
        {"page_url": "ftp://x/1"},
        {"page_url": "http:///nohost"},
        {"license_url": ""},
        {"license_url": "http://x y"},
        {"creator": "", "page_url": "", "license_url": ""},
    ],
)
@pytest.mark.parametrize("require_title", [False, True])
def test_attribution_reasons_match_core_check(fields, require_title):
    row = pool(**fields, title="")
    attribution = Attribution(row["creator"], "", row["page_url"], row["license"], row["license_url"])
    result = select_batch(pool_rows([row]), SelectConfig(require_title=require_title))
    assert result.rows.column("reason").to_pylist() == [attribution.check(require_title=require_title)]


def test_policy_permissive_and_lists():
    rows = [pool(key=f"k{i}", license=lic) for i, lic in enumerate(["CC0-1.0", "CC-BY-SA-4.0", "CC-BY-2.0", "ARR"])]
    kept = lambda policy: select_batch(pool_rows(rows), SelectConfig(policy=policy)).kept.column("key").to_pylist()  # noqa: E731
    assert kept("cc-by") == ["k2"]  # CC-BY-<version> only, as PASS
    assert kept("permissive") == ["k0", "k2"]
    assert kept("CC-BY-SA-*") == ["k1"]
    with pytest.raises(ValueError, match="neither a policy"):
        SelectConfig(policy="anything-goes")
    with pytest.raises(ValueError, match="max_per_creator"):
        SelectConfig(max_per_creator=-1)


def test_key_rank_is_deterministic_seeded_and_spread():
    keys = pa.array([f"yfcc-{i}" for i in range(5000)] + ["", "é-unicode"])
    a, b = key_rank(keys, 0), key_rank(keys, 0)
    assert a.dtype == np.uint64 and (a == b).all()
    assert (key_rank(keys, 1) != a).mean() > 0.99
    assert len(np.unique(a)) == len(a)
    # Independent of the batch: a key ranks the same alone and among others.
    assert key_rank(pa.array(["yfcc-42"]), 0)[0] == a[42]
    # Roughly uniform: each quarter of the 64-bit range holds about a quarter of the keys.
    quarters = np.bincount((a >> np.uint64(62)).astype(int), minlength=4)
    assert quarters.min() > 1100


def test_cap_keeps_the_lowest_ranks_per_creator():
    creators = np.array([0, 0, 0, 1, 0, 1, 2])
    ranks = np.array([50, 10, 30, 5, 20, 1, 99], dtype=np.uint64)
    assert cap_per_creator(creators, ranks, 2).tolist() == [False, True, False, True, True, True, True]
    assert cap_per_creator(creators, ranks, 0).all()
    rng = np.random.default_rng(0)
    creators = rng.integers(0, 50, 10000)
    ranks = rng.integers(0, 2**63, 10000).astype(np.uint64)
    keep = cap_per_creator(creators, ranks, 80)
    for creator in range(50):
        mine = creators == creator
        expected = min(80, mine.sum())
        assert keep[mine].sum() == expected
        assert ranks[mine & keep].max() < np.sort(ranks[mine])[expected - 1] + 1


def test_first_occurrences_confirms_hash_collisions_with_keys():
    hashes = np.array([5, 7, 5, 5, 9, 7], dtype=np.uint64)
    keys = ["a", "b", "a", "c", "d", "b"]  # rows 0, 2 same key; row 3 collides with them but is another key
    first = first_occurrences(hashes, lambda rows: [keys[i] for i in rows])
    assert first.tolist() == [True, True, False, True, True, False]
    assert first_occurrences(hashes).tolist() == [True, True, False, False, True, False]


def write_yfcc(path, lines):
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    return path


def yfcc_pool(tmp_path):
    lines = []
    for i in range(120):  # one prolific creator: the cap applies
        lines.append(yfcc_line("single-file", i + 1, photo_id=1000 + i, nsid="7@N00", nickname="prolific"))
    for i in range(30):
        license = ["by", "by-sa", "by-nc", "by-nc-sa", "by-nd"][i % 5]
        lines.append(yfcc_line("single-file", 200 + i, photo_id=5000 + i, nsid=f"{i}@N01", license=license))
    lines.append(yfcc_line("single-file", 300, photo_id=5000, nsid="0@N01"))  # duplicate of an admitted id
    lines.append(yfcc_line("single-file", 301, photo_id=6001, marker="1"))
    lines.append(yfcc_line("single-file", 302, photo_id=6002, photo_hash_value="deadbeef" * 4))
    lines.append(yfcc_line("single-file", 303, photo_id=6003, nickname=""))
    lines.append("garbage without tabs")
    return write_yfcc(tmp_path / "yfcc100m_dataset.bz2", lines), len(lines)


def test_run_select_accounts_for_every_row(tmp_path):
    source, count = yfcc_pool(tmp_path)
    out = tmp_path / "out" / "candidates.parquet"
    summary = run_select([source], out, SelectConfig(max_per_creator=80))
    candidates = pq.read_table(out)
    rejects = pq.read_table(rejects_path_for(out))
    assert rejects_path_for(out).name == "candidates.rejects.parquet"
    assert summary.rows_in == count == candidates.num_rows + rejects.num_rows
    assert summary.candidates == candidates.num_rows and summary.rejects == rejects.num_rows and summary.balanced
    assert candidates.column_names[: len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert {"key", "reason", "detail", "line", "source_file"} <= set(rejects.column_names)
    keys = candidates.column("key").to_pylist()
    assert len(set(keys)) == len(keys) and all(is_valid_key(k) for k in keys)
    assert all(is_valid_reason(r) for r in rejects.column("reason").to_pylist())
    assert set(candidates.column("license").to_pylist()) == {"CC-BY-2.0"}
    assert dict(summary.by_reason) == {
        "cap:creator": 40,
        "license:not-allowed": 24,
        "dedup:exact": 1,
        "metadata:video": 1,
        "metadata:malformed": 2,
        "attribution:incomplete:creator": 1,
    }
    prolific = pc.equal(candidates.column("creator_id"), "7@N00")
    assert pc.sum(prolific).as_py() == 80
    # The cap keeps the 80 smallest seeded ranks of that creator's keys.
    all_keys = pa.array([f"yfcc-{1000 + i}" for i in range(120)])
    expected = set(np.array(all_keys.to_pylist())[np.argsort(key_rank(all_keys, 0))[:80]])
    assert set(candidates.filter(prolific).column("key").to_pylist()) == expected
    malformed = rejects.filter(pc.equal(rejects.column("reason"), "metadata:malformed")).to_pylist()
    assert sorted(row["line"] for row in malformed) == [153, 155]
    assert any("MD5" in row["detail"] for row in malformed)
    duplicate = rejects.filter(pc.equal(rejects.column("reason"), "dedup:exact")).to_pylist()
    assert [(row["key"], row["line"]) for row in duplicate] == [("yfcc-5000", 151)]


def test_different_seed_draws_a_different_capped_subset_and_same_seed_is_reproducible(tmp_path):
    source, _ = yfcc_pool(tmp_path)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run_select([source], tmp_path / name / "candidates.parquet", SelectConfig(seed=seed))
        runs[name] = pq.read_table(tmp_path / name / "candidates.parquet")
    assert runs["a"].equals(runs["b"])
    assert set(runs["a"].column("key").to_pylist()) != set(runs["c"].column("key").to_pylist())
    assert runs["a"].num_rows == runs["c"].num_rows


def test_unknown_source_is_a_clear_error_before_work(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\nworld\n")
    with pytest.raises(SourceError, match="unknown source kind"):
        open_source(junk)
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.bz2")
    out = tmp_path / "candidates.parquet"
    with pytest.raises(SourceError):
        run_select([junk], out, SelectConfig())
    assert not out.exists() and not rejects_path_for(out).exists()


@pytest.fixture
def wide_console(monkeypatch):
    monkeypatch.setattr(cli, "console", Console(width=200))


def test_cli_select_summary_adds_up(tmp_path, wide_console):
    source, count = yfcc_pool(tmp_path)
    out = tmp_path / "candidates.parquet"
    result = CliRunner().invoke(app, ["select", str(source), "--out", str(out), "--max-per-creator", "80"])
    assert result.exit_code == 0, result.output
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    counts = {
        m.group(1).strip(): int(m.group(2).replace(",", ""))
        for m in re.finditer(r"│ (\S[^│]*?)\s+│\s+([\d,]+) │", text)
    }
    outcomes = ["candidate", "cap:creator", "license:not-allowed", "dedup:exact", "metadata:video"]
    assert all(name in counts for name in outcomes), text
    assert counts["total"] == count
    reasons = {k: v for k, v in counts.items() if k == "candidate" or ":" in k}
    assert sum(reasons.values()) == count
    assert "CC-BY-2.0" in text and "policy cc-by" in text
    assert pq.read_table(out).num_rows == counts["candidate"]


def test_cli_select_bad_policy_exits_2(tmp_path):
    source, _ = yfcc_pool(tmp_path)
    result = CliRunner().invoke(app, ["select", str(source), "--policy", "bogus", "--out", str(tmp_path / "c.parquet")])
    assert result.exit_code == 2
    assert not (tmp_path / "c.parquet").exists()


def test_candidate_schema_starts_with_the_contract_columns():
    from passkit.core.candidates import CANDIDATE_COLUMNS
    from passkit.sources.schema import CANDIDATE_SCHEMA

    assert tuple(CANDIDATE_SCHEMA.names[: len(CANDIDATE_COLUMNS)]) == CANDIDATE_COLUMNS
    assert list(CANDIDATE_COLUMNS) == CONTRACT_COLUMNS


def test_cli_select_starts_lean(tmp_path):
    """A fresh `passkit select` loads none of the heavy modules other verbs use, and pyarrow's pandas probe
    is skipped (~0.3 s of start-up) without breaking a later to_pandas()."""
    import subprocess
    import sys

    source, count = yfcc_pool(tmp_path)
    out = tmp_path / "candidates.parquet"
    code = (
        "import sys\n"
        "from passkit.cli import app\n"
        f"app(['select', {str(source)!r}, '--out', {str(out)!r}], standalone_mode=False)\n"
        "heavy = ['pandas', 'torch', 'onnxruntime', 'sklearn', 'PIL', 'cv2', 'rapidocr', 'aiohttp']\n"
        "print('LOADED', [name for name in heavy if name in sys.modules])\n"
        "import pyarrow.parquet as pq\n"
        "print('FRAME', type(pq.read_table(sys.argv[1]).to_pandas()).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True)
    assert "LOADED []" in result.stdout, result.stdout + result.stderr
    assert "FRAME DataFrame" in result.stdout
    assert pq.read_table(out).num_rows + pq.read_table(rejects_path_for(out)).num_rows == count
