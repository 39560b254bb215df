"""Attribution: the fields a CC-BY release needs, a completeness check, and the TASL string.

TASL = Title, Author, Source, License (the Creative Commons recommended practice). CC licences (2.0 to 4.0)
require the title only "if supplied", and many Flickr photos have none, so an empty title is allowed unless
``require_title`` is set; the attribution string then says "Untitled".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from html import escape
from urllib.parse import urlsplit

from passkit.core import reasons
from passkit.core.licenses import UNKNOWN, license_name, normalize_license
from passkit.core.licenses import license_url as canonical_license_url

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
FIELDS = ("creator", "title", "page_url", "license", "license_url")


def clean_text(value: object) -> str:
    """Strip, drop control characters and collapse whitespace; ``None`` becomes ``""``."""
    if value is None:
        return ""
    return " ".join(_CONTROL.sub(" ", str(value)).split())


def is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


@dataclass(frozen=True)
class Attribution:
    creator: str
    title: str
    page_url: str
    license: str
    license_url: str

    @classmethod
    def from_fields(
        cls,
        *,
        creator: object,
        title: object,
        page_url: object,
        license: object,
        license_url: object = None,
    ) -> Attribution:
        """Build from raw fields: text is cleaned, the license normalised, a missing license URL filled in
        from the license id (canonical URL), never invented for ``unknown`` / ``ARR``."""
        license_id = normalize_license(license)
        url = clean_text(license_url) or (canonical_license_url(license_id) or "")
        return cls(
            creator=clean_text(creator),
            title=clean_text(title),
            page_url=clean_text(page_url),
            license=license_id,
            license_url=url,
        )

    def missing_fields(self, require_title: bool = False) -> list[str]:
        """Names of fields that are absent or unusable, in ``FIELDS`` order."""
        missing = []
        if not self.creator:
            missing.append("creator")
        if require_title and not self.title:
            missing.append("title")
        if not is_web_url(self.page_url):
            missing.append("page_url")
        if self.license == UNKNOWN or not self.license:
            missing.append("license")
        if not is_web_url(self.license_url):
            missing.append("license_url")
        return missing

    def check(self, require_title: bool = False) -> str:
        """``""`` when complete, else the reject reason ``attribution:incomplete:<field,...>``."""
        missing = self.missing_fields(require_title)
        return reasons.attribution_incomplete(missing) if missing else ""

    def tasl(self) -> str:
        """'"Title" by Creator (page URL), licensed under CC BY 2.0 (license URL)'."""
        title = f'"{self.title}"' if self.title else "Untitled"
        return (
            f"{title} by {self.creator or 'unknown creator'} ({self.page_url}), "
            f"licensed under {license_name(self.license)} ({self.license_url})"
        )

    def tasl_html(self) -> str:
        title = escape(self.title) if self.title else "Untitled"
        return (
            f'<a href="{escape(self.page_url)}">{title}</a> by {escape(self.creator)}, licensed under '
            f'<a href="{escape(self.license_url)}">{escape(license_name(self.license))}</a>'
        )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
