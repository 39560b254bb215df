"""Real-format YFCC100M lines for tests, written from the published column description (both layouts)."""

from __future__ import annotations

import hashlib
from urllib.parse import quote_plus

ORIGINAL_FIELDS = (
    "photo_id",
    "user_nsid",
    "user_nickname",
    "date_taken",
    "date_uploaded",
    "capture_device",
    "title",
    "description",
    "user_tags",
    "machine_tags",
    "longitude",
    "latitude",
    "accuracy",
    "page_url",
    "download_url",
    "license_name",
    "license_url",
    "server_id",
    "farm_id",
    "secret",
    "secret_original",
    "extension",
    "marker",
)

LICENSES = {
    "by": ("Attribution License", "http://creativecommons.org/licenses/by/2.0/"),
    "by-sa": ("Attribution-ShareAlike License", "http://creativecommons.org/licenses/by-sa/2.0/"),
    "by-nc": ("Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/"),
    "by-nc-sa": (
        "Attribution-NonCommercial-ShareAlike License",
        "http://creativecommons.org/licenses/by-nc-sa/2.0/",
    ),
    "by-nd": ("Attribution-NoDerivs License", "http://creativecommons.org/licenses/by-nd/2.0/"),
}


def photo_hash(url: str) -> str:
    """MD5 of the download URL, each byte with %x (no zero padding), as the single-file release prints it."""
    return "".join("%x" % byte for byte in hashlib.md5(url.encode()).digest())  # noqa: UP031


def yfcc_fields(
    photo_id: int = 6985418911,
    nsid: str = "39089491@N00",
    nickname: str = "nino63004",
    title: str = "Key West été",
    license: str = "by",
    **overrides: str,
) -> dict[str, str]:
    """One record's raw fields as the dump spells them (text +/%XX-encoded)."""
    server, farm, secret = 7205, 8, "df7747990d"
    name, url = LICENSES[license]
    fields = {
        "photo_id": str(photo_id),
        "user_nsid": nsid,
        "user_nickname": quote_plus(nickname),
        "date_taken": "2012-02-16 09:56:37.0",
        "date_uploaded": "1331840483",
        "capture_device": quote_plus("Canon PowerShot ELPH 310 HS"),
        "title": quote_plus(title),
        "description": quote_plus("A view of the harbour, at dusk\nsecond line"),
        "user_tags": "key+west,florida,harbour",
        "machine_tags": "",
        "longitude": "-81.804885",
        "latitude": "24.550558",
        "accuracy": "16",
        "page_url": f"http://www.flickr.com/photos/{nsid}/{photo_id}/",
        "download_url": f"http://farm{farm}.staticflickr.com/{server}/{photo_id}_{secret}.jpg",
        "license_name": quote_plus(name),
        "license_url": url,
        "server_id": str(server),
        "farm_id": str(farm),
        "secret": secret,
        "secret_original": "692d7e0a7f",
        "extension": "jpg",
        "marker": "0",
    }
    fields.update(overrides)
    return fields


def yfcc_line(layout: str = "original", line_number: int = 0, photo_hash_value: str | None = None, **kw: str) -> str:
    fields = yfcc_fields(**kw)  # type: ignore[arg-type]
    values = [fields[name] for name in ORIGINAL_FIELDS]
    if layout == "original":
        return "\t".join(values)
    digest = photo_hash(fields["download_url"]) if photo_hash_value is None else photo_hash_value
    return "\t".join([str(line_number), values[0], digest, *values[1:]])
