import hashlib
import io
import os
import tarfile
import tracemalloc

import pytest

from passkit.core.sample import Sample
from passkit.core.tar import (
    FIXED_MODE,
    FIXED_MTIME,
    ShardError,
    ShardWriter,
    TruncatedShardError,
    UnsafeMemberError,
    iter_samples,
    read_shard,
    split_member_name,
    write_shard,
)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip(tmp_path, samples):
    path = write_shard(tmp_path / "00000.tar", samples)
    back = list(read_shard(path))
    assert [s.key for s in back] == [s.key for s in samples]
    assert all(a.parts == b.parts for a, b in zip(back, samples, strict=True))
    assert back[3].json()["title"] == "Photo nº 3"


def test_deterministic_bytes_whatever_the_write_order(tmp_path, samples):
    in_order = write_shard(tmp_path / "a.tar", samples)
    shuffled = write_shard(tmp_path / "b.tar", list(reversed(samples[6:])) + samples[:6])
    assert digest(in_order) == digest(shuffled)
    assert [s.key for s in read_shard(shuffled)] == sorted(s.key for s in samples)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_members_have_fixed_metadata_and_sorted_names(tmp_path, samples):
    path = write_shard(tmp_path / "00000.tar", samples[::-1])
    with tarfile.open(path) as archive:
        members = archive.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names[:2] == ["pool-0000.jpg", "pool-0000.json"]
    for member in members:
        assert member.isreg()
        assert (member.mtime, member.mode, member.uid, member.gid) == (FIXED_MTIME, FIXED_MODE, 0, 0)
        assert member.uname == member.gname == ""
    assert path.stat().st_size % 10240 == 0


def test_writer_refuses_bad_input(tmp_path):
    with ShardWriter(tmp_path / "x.tar") as writer:
        writer.write(Sample("k1", {"jpg": b"1"}))
        with pytest.raises(ShardError, match="written twice"):
            writer.write(Sample("k1", {"jpg": b"2"}))
        with pytest.raises(ShardError, match="does not match"):
            writer.write(Sample("k.2", {"jpg": b"2"}))
        with pytest.raises(ShardError, match="no parts"):
            writer.write(Sample("k3", {}))
    assert [s.key for s in read_shard(tmp_path / "x.tar")] == ["k1"]
    with pytest.raises(ValueError, match="extension"):
        Sample.build("k4", **{"JPG": b"x"})


def test_failed_write_publishes_nothing(tmp_path, samples):
    target = tmp_path / "00001.tar"
    with pytest.raises(RuntimeError), ShardWriter(target) as writer:
        writer.write(samples[0])
        raise RuntimeError("crash in the middle of a shard")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_webdataset_reads_our_shards_identically(tmp_path, samples):
    webdataset = pytest.importorskip("webdataset")
    path = write_shard(tmp_path / "00000.tar", samples)
    rows = list(webdataset.WebDataset(str(path), shardshuffle=False))
    assert [row["__key__"] for row in rows] == [s.key for s in samples]
    for row, sample in zip(rows, samples, strict=True):
        assert row["jpg"] == sample.parts["jpg"]
        assert row["json"] == sample.parts["json"]


def test_reads_tars_made_by_other_tools(tmp_path, samples):
    path = tmp_path / "gnu.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        long_key = "k" * 120
        for name, data in (("a.jpg", b"1"), ("a.json", b"{}"), (f"{long_key}.jpg", b"2")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert [(s.key, sorted(s.parts)) for s in read_shard(path)] == [("a", ["jpg", "json"]), (long_key, ["jpg"])]


def _tar_with(tmp_path, build):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        ok = tarfile.TarInfo("good.jpg")
        ok.size = 1
        archive.addfile(ok, io.BytesIO(b"1"))
        info = build()
        archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return path


def _member(name, kind=tarfile.REGTYPE, size=1, linkname=""):
    def build():
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size if kind == tarfile.REGTYPE else 0
        info.linkname = linkname
        return info

    return build


@pytest.mark.parametrize(
    "build,message",
    [
        (_member("/etc/evil.jpg"), "absolute path"),
        (_member("../evil.jpg"), r"'\.\.'"),
        (_member("sub/../../evil.jpg"), r"'\.\.'"),
        (_member("evil.jpg", tarfile.SYMTYPE, linkname="/etc/passwd"), "links are not allowed"),
        (_member("evil.jpg", tarfile.LNKTYPE, linkname="good.jpg"), "links are not allowed"),
        (_member("evil.jpg", tarfile.CHRTYPE), "not a regular file"),
        (_member("evil.jpg", tarfile.BLKTYPE), "not a regular file"),
        (_member("evil.jpg", tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, build, message):
    path = _tar_with(tmp_path, build)
    read = []
    with pytest.raises(UnsafeMemberError, match=message) as caught:
        read.extend(s.key for s in read_shard(path, strict_keys=False))
    assert str(path) in str(caught.value)
    assert read == ["good"], "members before the unsafe one stay readable"


def test_member_names_must_be_keys_in_strict_mode(tmp_path):
    path = _tar_with(tmp_path, _member("Sub/Photo.JPG"))
    with pytest.raises(ShardError, match="does not match"):
        list(read_shard(path))
    assert [s.key for s in read_shard(path, strict_keys=False)] == ["good", "Sub/Photo"]


def test_split_key_runs_are_an_error(tmp_path):
    path = tmp_path / "split.tar"
    with tarfile.open(path, "w") as archive:
        for name in ("a.jpg", "b.jpg", "a.json"):
            info = tarfile.TarInfo(name)
            info.size = 1
            archive.addfile(info, io.BytesIO(b"1"))
    with pytest.raises(ShardError, match="two separate runs"):
        list(read_shard(path))


def _cut(tmp_path, data, at):
    path = tmp_path / f"cut-{at}.tar"
    path.write_bytes(data[:at])
    return path


def _read_until_error(path):
    keys = []
    with pytest.raises(TruncatedShardError) as caught:
        for sample in read_shard(path):
            keys.append(sample.key)
    return keys, caught.value


def test_truncated_inside_member_data(tmp_path, samples):
    full = write_shard(tmp_path / "00000.tar", samples).read_bytes()
    # offset of the 6th sample's jpg data: find its header, cut 100 bytes into its data
    header_at = full.index(b"pool-0005.jpg")
    path = _cut(tmp_path, full, header_at + 512 + 100)
    keys, error = _read_until_error(path)
    assert keys == [s.key for s in samples[:5]]
    assert error.member == "pool-0005.jpg"
    assert "cut-" in str(error) and "pool-0005.jpg" in str(error) and "member data" in str(error)


def test_truncated_inside_second_part_of_a_sample(tmp_path, samples):
    full = write_shard(tmp_path / "00000.tar", samples).read_bytes()
    header_at = full.index(b"pool-0005.json")
    keys, error = _read_until_error(_cut(tmp_path, full, header_at + 512 + 3))
    assert keys == [s.key for s in samples[:5]], "the half-read sample is not returned"
    assert error.member == "pool-0005.json"


@pytest.mark.parametrize("where", ["header", "marker"])
def test_truncated_headers_and_missing_end_marker(tmp_path, samples, where):
    full = write_shard(tmp_path / "00000.tar", samples).read_bytes()
    if where == "header":
        at = full.index(b"pool-0007.jpg") + 200
        expected = "inside a member header"
    else:
        last_data_end = len(full.rstrip(b"\0"))
        at = last_data_end + (512 - last_data_end % 512) % 512
        expected = "end-of-archive marker"
    keys, error = _read_until_error(_cut(tmp_path, full, at))
    assert expected in str(error)
    assert keys == [s.key for s in samples[: len(keys)]] and len(keys) >= 6


def test_damaged_header_is_an_error_not_a_silent_end(tmp_path, samples):
    full = bytearray(write_shard(tmp_path / "00000.tar", samples).read_bytes())
    at = full.index(b"pool-0004.jpg")
    full[at + 148 : at + 156] = b"garbage!"  # checksum field
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(full))
    with pytest.raises(ShardError, match="damaged member header"):
        list(read_shard(path))


def test_reading_streams_in_constant_memory(tmp_path):
    big = [Sample.build(f"big-{i:03d}", jpg=os.urandom(1 << 20), json={"i": i}) for i in range(40)]
    path = write_shard(tmp_path / "big.tar", big)
    del big
    tracemalloc.start()
    count = 0
    for sample in read_shard(path):
        count += len(sample.parts["jpg"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 40 << 20
    assert peak < 6 << 20, f"peak {peak / 2**20:.1f} MiB while streaming a 40 MiB shard"


def test_iter_samples_on_a_pipe_like_stream(samples, tmp_path):
    data = write_shard(tmp_path / "00000.tar", samples).read_bytes()

    class Unseekable(io.RawIOBase):
        def __init__(self, payload):
            self._inner = io.BytesIO(payload)

        def readable(self):
            return True

        def readinto(self, buffer):
            chunk = self._inner.read(min(len(buffer), 777))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    keys = [s.key for s in iter_samples(Unseekable(data))]
    assert keys == [s.key for s in samples]


def test_split_member_name():
    assert split_member_name("abc.jpg") == ("abc", "jpg")
    assert split_member_name("d/abc.seg.png") == ("d/abc", "seg.png")
    for bad in ("abc", ".jpg", "abc."):
        with pytest.raises(ValueError):
            split_member_name(bad)
