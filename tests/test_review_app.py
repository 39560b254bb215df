import io
import json

import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the review app needs passkit[review]")
from starlette.testclient import TestClient

from passkit.review.app import ReviewSession, create_app
from passkit.review.dataset import DatasetError, ReviewDataset, box_space, normalised_boxes
from passkit.review.queues import build_queue
from passkit.review.store import DecisionStore
from review_helpers import make_review_dir

TOKEN = "test-token-123"


@pytest.fixture
def folder(tmp_path):
    make_review_dir(tmp_path / "filtered", kept=30, rejected=4, pii=True)
    return tmp_path / "filtered"


@pytest.fixture
def client(folder):
    dataset = ReviewDataset.open(folder)
    store = DecisionStore.for_dataset(folder)
    session = ReviewSession(dataset, store, "borderline", build_queue("borderline", dataset), "ann", TOKEN)
    app = create_app(session, allowed_hosts=["testserver"], cookie_name="passkit_review_test")
    with TestClient(app, headers={"x-passkit-token": TOKEN}) as authorised:
        yield authorised
    store.close()


def anonymous(client):
    return TestClient(client.app)


def post(client, path, body, **headers):
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json", **headers})


def test_every_route_needs_the_token(client):
    bare = anonymous(client)
    for path in ("/", "/static/app.js", "/api/state", "/api/items", "/img/img-00001", "/img/nope", "/nowhere"):
        assert bare.get(path).status_code == 401, path
    assert bare.get("/api/state", headers={"x-passkit-token": "wrong"}).status_code == 401
    assert bare.get("/api/state?token=" + TOKEN[:-1]).status_code == 401
    assert post(bare, "/api/decide", {"keys": ["img-00001"], "label": "clean"}).status_code == 401


def test_url_token_becomes_a_cookie_and_the_url_is_cleaned(client):
    browser = anonymous(client)
    first = browser.get(f"/?token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "passkit review" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    assert browser.get("/api/state").json()["total"] == 30


@pytest.mark.parametrize(
    "path",
    [
        "/img/..%2F..%2F..%2Fetc%2Fpasswd",
        "/img/%2e%2e%2f00000.tar",
        "/img/../00000.tar",
        "/img/00000.tar",
        "/img/rej-00000",  # a rejected image is not served
        "/img/no-such-key",
        "/img/IMG-00001",
        "/static/..%2Fapp.py",
        "/static/index.html.bak",
        "/review/decisions.sqlite",
        "/00000.tar",
    ],
)
def test_images_only_by_key_and_traversal_is_404(client, path):
    assert client.get(path).status_code == 404


def test_image_thumbnail_and_full_bytes(client, folder):
    dataset = ReviewDataset.open(folder)
    full = client.get("/img/img-00004?full=1")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.content == dataset.read_image("img-00004")[0]
    thumb = client.get("/img/img-00004")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (120, 90)  # never upscaled


def test_items_give_scores_boxes_and_order(client):
    state = client.get("/api/state").json()
    assert state["queue"] == "borderline" and state["first_undecided"] == 0
    page = client.get("/api/items?start=0&count=5").json()
    keys = [item["key"] for item in page["items"]]
    assert keys[0] == "img-00001"  # pii_score 0.9 is the highest detector score
    humans = [item["scores"]["humans"] for item in page["items"][1:]]
    assert humans == sorted(humans, reverse=True)
    first = page["items"][0]
    assert first["boxes"][0]["task"] == "text"
    assert first["boxes"][0]["x"] == pytest.approx(10 / 120)
    with_person = client.get("/api/items?start=0&count=30").json()["items"]
    person = next(item for item in with_person if item["key"] == "img-00003")
    assert person["boxes"] == [
        {"x": pytest.approx(2 / 120), "y": pytest.approx(5 / 90), "w": pytest.approx(0.5 - 2 / 120),
         "h": pytest.approx(55 / 90), "score": 0.04, "task": "person", "by": "yolox_nano@full"}
    ]  # fmt: skip
    for bad in ("start=-1", "count=0", "count=1000", "start=x"):
        assert client.get(f"/api/items?{bad}").status_code == 400


def test_decide_and_undo_are_stored(client, folder):
    response = post(client, "/api/decide", {"keys": ["img-00002"], "label": "problem", "reason": "review:human"})
    assert response.status_code == 200, response.text
    assert response.json()["counts"] == {"decided": 1, "human": 1, "other": 0, "clean": 0}
    assert post(client, "/api/decide", {"keys": ["img-00005", "img-00006"], "label": "clean"}).status_code == 200
    assert post(client, "/api/undo", {"keys": ["img-00005"]}).json()["counts"]["decided"] == 2
    with DecisionStore.for_dataset(folder, readonly=True) as store:
        current = store.current()
    assert {key: (d.label, d.reason, d.reviewer, d.queue) for key, d in current.items()} == {
        "img-00002": ("problem", "review:human", "ann", "borderline"),
        "img-00006": ("clean", "", "ann", "borderline"),
    }
    items = client.get("/api/items?start=0&count=30").json()["items"]
    decided = {item["key"]: item["decision"]["label"] for item in items if item["decision"]}
    assert decided == {"img-00002": "problem", "img-00006": "clean"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"keys": ["img-00002"], "label": "problem"}, 400),  # a problem needs its reason
        ({"keys": ["img-00002"], "label": "problem", "reason": "humans:person"}, 400),
        ({"keys": ["img-00002"], "label": "clean", "reason": "review:human"}, 400),
        ({"keys": ["img-00002"], "label": "undo"}, 400),
        ({"keys": ["img-00002"], "label": "clean", "extra": 1}, 400),
        ({"keys": [], "label": "clean"}, 400),
        ({"keys": "img-00002", "label": "clean"}, 400),
        ({"keys": ["img-00002", "img-00002"], "label": "clean"}, 400),
        ({"keys": ["../../etc/passwd"], "label": "clean"}, 400),
        ({"keys": [1], "label": "clean"}, 400),
        (["img-00002"], 400),
        ({"keys": ["no-such-key"], "label": "clean"}, 404),
        ({"keys": ["rej-00001"], "label": "clean"}, 404),
    ],
)
def test_post_schema_is_checked(client, folder, body, status):
    assert post(client, "/api/decide", body).status_code == status
    with DecisionStore.for_dataset(folder, readonly=True) as store:
        assert len(store) == 0


def test_post_guards(client, folder):
    body = {"keys": ["img-00002"], "label": "clean"}
    browser = anonymous(client)
    browser.get(f"/?token={TOKEN}")  # the cookie alone
    assert post(browser, "/api/decide", body).status_code == 403
    assert post(client, "/api/decide", body, origin="http://evil.example").status_code == 403
    assert post(client, "/api/decide", body, **{"sec-fetch-site": "cross-site"}).status_code == 403
    wrong_type = client.post("/api/decide", content=json.dumps(body), headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    huge = {"keys": ["img-00002"], "label": "clean", "pad": "x" * 70_000}
    assert post(client, "/api/decide", huge).status_code == 413
    assert (
        client.post("/api/decide", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert client.put("/api/decide", content=b"{}").status_code == 405
    assert post(client, "/api/decide", body, origin="http://testserver").status_code == 200
    with DecisionStore.for_dataset(folder, readonly=True) as store:
        assert len(store) == 1


def test_foreign_host_header_is_refused(client):
    assert client.get("/api/state", headers={"host": "attacker.example"}).status_code == 400


def test_dataset_index_is_cached_and_rebuilt_when_a_tar_changes(folder):
    first = ReviewDataset.open(folder)
    assert (folder / "review" / "index.parquet").exists()
    again = ReviewDataset.open(folder)
    assert again.location("img-00003") == first.location("img-00003")
    make_review_dir(folder, kept=31, rejected=4, size=(80, 60), pii=True)  # rewrites both shards
    rebuilt = ReviewDataset.open(folder)
    assert len(rebuilt) == 31
    data, ext = rebuilt.read_image("img-00030")
    assert ext == "jpg" and Image.open(io.BytesIO(data)).size == (80, 60)


def test_kept_row_without_image_is_a_clear_error(folder):
    import pyarrow.parquet as pq

    from passkit.core.manifest import write_manifest

    table = pq.read_table(folder / "00000.parquet").to_pylist()
    table.append({**table[0], "key": "ghost-1"})
    write_manifest(folder / "00000.parquet", table)
    with pytest.raises(DatasetError, match="1 kept rows have no image"):
        ReviewDataset.open(folder)


def test_box_space_follows_exif_orientation():
    row = {"source_width": 400, "source_height": 300, "orientation": 6, "width": 150, "height": 200}
    assert box_space(row) == (300.0, 400.0)
    row["humans_boxes"] = json.dumps([{"task": "face", "score": 0.5, "box": [-10, 0, 150, 800]}, {"box": "bad"}])
    assert normalised_boxes(row) == [
        {"x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0, "score": 0.5, "task": "face", "by": ""}
    ]  # fmt: skip
    assert normalised_boxes({"humans_boxes": "not json", "width": 10, "height": 10}) == []


def test_review_command_errors_are_clear(tmp_path, folder, monkeypatch):
    import re
    import socket

    from rich.console import Console
    from typer.testing import CliRunner

    from passkit import cli

    monkeypatch.setattr(cli, "err_console", Console(width=200, stderr=True))
    runner = CliRunner()
    empty = runner.invoke(cli.app, ["review", str(tmp_path / "nothing")])
    assert empty.exit_code == 2 and "is not a folder" in empty.output
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        taken = runner.invoke(cli.app, ["review", str(folder), "--port", str(busy.getsockname()[1])])
    finally:
        busy.close()
    assert taken.exit_code == 2 and re.search(r"address already in use", taken.output, re.IGNORECASE)
    assert runner.invoke(cli.app, ["review", str(folder), "--queue", "nope"]).exit_code == 2


def test_tar_scan_matches_tarfile_and_falls_back_for_pax(folder, tmp_path):
    import tarfile

    from passkit.core.shards import ShardPaths
    from passkit.review.dataset import scan_tar

    shard = ShardPaths(folder, 0).tar
    with tarfile.open(shard) as archive:
        expected = [(m.name.split(".")[0], "jpg", m.offset_data, m.size) for m in archive if m.name.endswith(".jpg")]
    assert scan_tar(shard) == expected and len(expected) == 15
    pax = tmp_path / "pax.tar"
    with tarfile.open(pax, "w", format=tarfile.PAX_FORMAT) as archive:
        for name in ("k" * 120 + ".jpg", "café.jpg", "ok-1.png", "sub/ok-2.jpg", "ok-3.json"):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"abc"))
    assert [(key, ext) for key, ext, _, _ in scan_tar(pax)] == [("k" * 120, "jpg"), ("ok-1", "png")]


@pytest.mark.parametrize("damage", ["checksum", "truncated"])
def test_damaged_tar_is_a_clear_error(folder, damage):
    from passkit.core.shards import ShardPaths
    from passkit.review.dataset import scan_tar

    shard = ShardPaths(folder, 1).tar
    data = bytearray(shard.read_bytes())
    if damage == "checksum":
        header_of_second_image = scan_tar(shard)[1][2] - 512
        data[header_of_second_image + 10] ^= 0x55  # a byte of its name
    else:
        data = data[: len(data) // 2]
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"00001\.tar"):
        scan_tar(shard)
    with pytest.raises(DatasetError):
        ReviewDataset.open(folder)


def test_audit_queue_serves_the_drawn_sample_in_its_order(folder):
    from passkit.review.audit import AuditPlan, load_or_draw
    from passkit.review.server import ReviewServerConfig, open_session

    plan, _ = load_or_draw(folder, ReviewDataset.open(folder), 12, 7)
    session, note = open_session(folder, ReviewServerConfig(queue="audit", reviewer="ann"), TOKEN)
    assert session.keys == plan.keys and f"12 (seed 7) from {plan.drawn}" in note
    session.store.close()
    (folder / "review" / "audit-plan.json").unlink()
    session, note = open_session(folder, ReviewServerConfig(queue="audit"), TOKEN)  # none yet: the default draw
    assert len(session.keys) == 30 and "drawn now" in note and AuditPlan.load(folder).seed == 0
    session.store.close()
