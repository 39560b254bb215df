import dataclasses
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from passkit.detect import registry
from passkit.detect.registry import (
    ModelChecksumError,
    ModelError,
    ModelMissingError,
    get_entry,
    model_path,
    sha256_file,
)


def test_entries_are_pinned_and_permissive():
    for entry in registry.MODELS.values():
        assert entry.task in ("person", "face", "text", "text-rec", "nsfw")
        assert entry.url.startswith("https://")
        assert "GPL" not in entry.license
        if entry.sha256 is not None:
            assert len(entry.sha256) == 64


def test_offline_dir_resolves_and_verifies(shared_models, monkeypatch, tmp_path):
    monkeypatch.setenv("PASSKIT_MODELS", str(shared_models))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    path = model_path("yolox_nano", download=False)
    assert path == shared_models / "yolox_nano" / "yolox_nano.onnx"
    assert sha256_file(path) == get_entry("yolox_nano").sha256


def test_flat_offline_dir_works(shared_models, monkeypatch, tmp_path):
    shutil.copy(shared_models / "fastestdet" / "FastestDet.onnx", tmp_path / "FastestDet.onnx")
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path))
    assert model_path("fastestdet", download=False) == tmp_path / "FastestDet.onnx"


def test_wrong_sha256_is_refused(shared_models, monkeypatch, tmp_path):
    data = bytearray((shared_models / "fastestdet" / "FastestDet.onnx").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "FastestDet.onnx").write_bytes(bytes(data))
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path))
    with pytest.raises(ModelChecksumError, match=r"FastestDet\.onnx has sha256 .* expected 31cb14c0"):
        model_path("fastestdet", download=False)


def test_missing_model_error_names_file_url_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelMissingError) as caught:
        model_path("yunet", download=False)
    message = str(caught.value)
    assert "yunet_s_dynamic.onnx" in message
    assert get_entry("yunet").url in message
    assert "PASSKIT_MODELS" in message


def test_unknown_model_and_unpinned_model(monkeypatch, tmp_path):
    with pytest.raises(ModelError, match="unknown detector model 'nope'"):
        get_entry("nope")
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelChecksumError, match="PASSKIT_SHA256_YOLOX_X"):
        model_path("yolox_x", download=True)


@pytest.fixture
def model_server(shared_models):
    """A real HTTP server on 127.0.0.1 serving the shared model folder."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(shared_models), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_on_first_use_into_cache(model_server, monkeypatch, tmp_path):
    entry = dataclasses.replace(get_entry("fastestdet"), url=f"{model_server}/fastestdet/FastestDet.onnx")
    monkeypatch.setitem(registry.MODELS, "fastestdet", entry)
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    path = model_path("fastestdet")
    assert path == tmp_path / "cache" / "fastestdet" / "FastestDet.onnx"
    assert sha256_file(path) == entry.sha256
    assert model_path("fastestdet", download=False) == path  # second use: from the cache


def test_fetched_file_with_wrong_hash_is_not_kept(model_server, monkeypatch, tmp_path):
    # The URL serves a different model than the entry pins.
    entry = dataclasses.replace(get_entry("fastestdet"), url=f"{model_server}/yolox_nano/yolox_nano.onnx")
    monkeypatch.setitem(registry.MODELS, "fastestdet", entry)
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelChecksumError):
        model_path("fastestdet")
    assert not any(Path(tmp_path / "cache").rglob("*.onnx*"))


def test_failed_download_is_a_clear_missing_error(monkeypatch, tmp_path):
    entry = dataclasses.replace(get_entry("fastestdet"), url="http://127.0.0.1:9/FastestDet.onnx")
    monkeypatch.setitem(registry.MODELS, "fastestdet", entry)
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelMissingError, match=r"FastestDet\.onnx not found .* download .* failed .* PASSKIT_MODELS"):
        model_path("fastestdet")


def test_model_shipped_by_an_installed_package_resolves_and_verifies(monkeypatch, tmp_path):
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    path = model_path("ppocr_det_v6_small", download=False)
    assert path.parts[-3:] == ("rapidocr", "models", "PP-OCRv6_det_small.onnx")
    assert sha256_file(path) == get_entry("ppocr_det_v6_small").sha256


def test_a_package_file_with_another_hash_is_refused(monkeypatch, tmp_path):
    package = tmp_path / "site" / "passkit_fake_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "det.onnx").write_bytes(b"not the pinned model")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entry = dataclasses.replace(get_entry("ppocr_det_v6_small"), package_files=("passkit_fake_models/det.onnx",))
    monkeypatch.setitem(registry.MODELS, entry.name, entry)
    monkeypatch.setenv("PASSKIT_MODELS", str(tmp_path / "empty"))
    monkeypatch.setenv("PASSKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelChecksumError, match=r"det\.onnx has sha256"):
        model_path(entry.name, download=False)
