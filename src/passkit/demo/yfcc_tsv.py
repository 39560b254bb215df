"""The pool's metadata as a genuine YFCC100M file, so that the real ``passkit select`` reader runs on it.

Layout: the 25-field single-file release (``yfcc100m_dataset``): line number, photo id, photo hash, user nsid, user
nickname, date taken, date uploaded, capture device, title, description, user tags, machine tags, longitude,
latitude, accuracy, page url, download url, license name, license url, server id, farm id, secret, secret original,
extension, marker. Text fields are ``+``/``%XX``-encoded as in the dump; the photo hash is the MD5 of the download
URL with each byte printed by ``%x`` (no zero padding), as the dump prints it and select verifies it.

Licenses: YFCC100M itself holds the six Flickr CC 2.0 licenses, named as Flickr names them ("Attribution License",
URL ``http://creativecommons.org/licenses/by/2.0/``). The package photos are mostly public domain, which Flickr
(and so a Flickr-derived pool) expresses with its licenses 7-10, written here with the names and URLs of the Flickr
API (``flickr.photos.licenses.getInfo``). Other CC versions use their short name ("CC BY 4.0"); a photo without a
documented license gets empty license fields.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

from passkit.core.atomic import atomic_path
from passkit.core.licenses import ARR, CC0, NKCR, PDM, UNKNOWN, US_GOV, family_of, license_name, license_url
from passkit.demo.pool import PoolPhoto
from passkit.sources.yfcc import SINGLE_FILE

# Flickr's names of its CC 2.0 licenses, as YFCC100M spells them.
_FLICKR_CC_NAMES = {
    "CC-BY": "Attribution License",
    "CC-BY-SA": "Attribution-ShareAlike License",
    "CC-BY-ND": "Attribution-NoDerivs License",
    "CC-BY-NC": "Attribution-NonCommercial License",
    "CC-BY-NC-SA": "Attribution-NonCommercial-ShareAlike License",
    "CC-BY-NC-ND": "Attribution-NonCommercial-NoDerivs License",
}
# Flickr licenses 0 and 7-10 (flickr.photos.licenses.getInfo): name, URL.
_FLICKR_OTHER = {
    ARR: ("All Rights Reserved", ""),
    NKCR: ("No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    US_GOV: ("United States Government Work", "http://www.usa.gov/copyright.shtml"),
    CC0: ("Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    PDM: ("Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
}


def yfcc_license_fields(license_id: str) -> tuple[str, str]:
    """(license name, license url) as a YFCC/Flickr record carries the license id; empty for ``unknown``."""
    if license_id in _FLICKR_OTHER:
        return _FLICKR_OTHER[license_id]
    if license_id == UNKNOWN:
        return "", ""
    family = family_of(license_id)
    url = license_url(license_id) or ""
    if family in _FLICKR_CC_NAMES and license_id.endswith("-2.0"):
        return _FLICKR_CC_NAMES[family], url.replace("https://", "http://")
    return license_name(license_id), url


def photo_hash(url: str) -> str:
    """YFCC100M's photo hash: MD5 of the download URL, each byte printed with ``%x``."""
    return "".join(f"{byte:x}" for byte in hashlib.md5(url.encode("utf-8")).digest())


def _text(value: str) -> str:
    return quote_plus(value, safe="")


@dataclass(frozen=True)
class ServedPhoto:
    """Where the loopback server serves one pool photo: URL path -> file on disk."""

    url_path: str
    file: Path
    content_type: str


_CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}


def url_path(photo: PoolPhoto, data: bytes) -> str:
    """Flickr-style static path ``/<server>/<id>_<secret>.<ext>``; the secret is derived from the bytes."""
    secret = hashlib.sha256(data).hexdigest()[:10]
    return f"/demo/{photo.photo_id}_{secret}.{photo.extension}"


def yfcc_line(number: int, photo: PoolPhoto, download_url: str, secret: str) -> str:
    name, url = yfcc_license_fields(photo.license)
    date_taken = (photo.date_taken + ".0").replace(" ", "+") if photo.date_taken else "null"
    fields = {
        "line_number": str(number),
        "photo_id": str(photo.photo_id),
        "photo_hash": photo_hash(download_url),
        "user_nsid": "",
        "user_nickname": _text(photo.creator),
        "date_taken": date_taken,
        "date_uploaded": "",
        "capture_device": "",
        "title": _text(photo.title),
        "description": _text(photo.documented_as),
        "user_tags": _text(photo.package),
        "machine_tags": "",
        "longitude": "",
        "latitude": "",
        "accuracy": "",
        "page_url": photo.page_url,
        "download_url": download_url,
        "license_name": _text(name),
        "license_url": url,
        "server_id": "0",
        "farm_id": "0",
        "secret": secret,
        "secret_original": "",
        "extension": photo.extension,
        "marker": "0",
    }
    for field, value in fields.items():
        if "\t" in value or "\n" in value:
            raise ValueError(f"{photo.name}: field {field} would break the TSV line: {value!r}")
    return "\t".join(fields[name] for name in SINGLE_FILE.columns)


def write_yfcc_tsv(pool: list[PoolPhoto], path: str | os.PathLike[str], base_url: str) -> list[ServedPhoto]:
    """Write ``pool`` as YFCC100M single-file metadata whose download URLs live under ``base_url`` (atomically,
    and only if the file's content changes); return what the loopback server must serve."""
    lines, served = [], []
    for number, photo in enumerate(pool):
        data = photo.read_bytes()
        path_part = url_path(photo, data)
        secret = path_part.rsplit("_", 1)[1].split(".")[0]
        lines.append(yfcc_line(number, photo, base_url.rstrip("/") + path_part, secret))
        content_type = _CONTENT_TYPES.get(photo.extension, "application/octet-stream")
        served.append(ServedPhoto(path_part, photo.path(), content_type))
    text = "".join(line + "\n" for line in lines)
    target = Path(path)
    if not target.is_file() or target.read_text(encoding="utf-8") != text:  # unchanged: keep it (and its mtime)
        with atomic_path(target) as temp:
            temp.write_text(text, encoding="utf-8")
    return served
