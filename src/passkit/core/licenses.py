"""Licenses: every form real image pools use, normalised to one SPDX-style id; license policies.

Ids (contract): ``CC-BY-<v>``, ``CC-BY-SA-<v>``, ``CC-BY-NC-<v>``, ``CC-BY-ND-<v>``, ``CC-BY-NC-SA-<v>``,
``CC-BY-NC-ND-<v>`` (v in 1.0, 2.0, 2.5, 3.0, 4.0), ``CC0-1.0``, ``PDM-1.0``, ``US-GOV``, ``NKCR`` (no known
copyright restrictions), ``ARR`` (all rights reserved) and ``unknown``.

Inputs understood: Flickr API license ids 0-10, Flickr/YFCC100M license names ("Attribution License",
"Attribution-NonCommercial-ShareAlike License", "+"-encoded as in the YFCC dump too), Creative Commons URLs
(http/https, with or without ``www.``, trailing slash, ``deed.xx``, ``legalcode``, jurisdiction ports such as
``by/2.0/de`` which map to the same family and version), SPDX ids (``CC-BY-4.0``, ``CC-BY-3.0-DE``), short forms
("CC BY-SA 4.0"), CC0, the Public Domain Mark, Flickr Commons' "No known copyright restrictions" and US Government
Work. Anything else is ``unknown`` — never guessed. Flickr's long names carry no version because Flickr defines
them as the 2.0 licenses; a short form without a version ("CC BY") is ``unknown``, since attribution must name
the exact license.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

UNKNOWN = "unknown"
ARR = "ARR"
CC0 = "CC0-1.0"
PDM = "PDM-1.0"
US_GOV = "US-GOV"
NKCR = "NKCR"

CC_FAMILIES = ("CC-BY", "CC-BY-SA", "CC-BY-NC", "CC-BY-ND", "CC-BY-NC-SA", "CC-BY-NC-ND")
CC_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")
ALL_IDS: tuple[str, ...] = (
    *(f"{family}-{version}" for family in CC_FAMILIES for version in CC_VERSIONS),
    CC0,
    PDM,
    US_GOV,
    NKCR,
    ARR,
    UNKNOWN,
)

# Flickr API (flickr.photos.licenses.getInfo), ids 0-10.
FLICKR_LICENSE_IDS: dict[int, str] = {
    0: ARR,
    1: "CC-BY-NC-SA-2.0",
    2: "CC-BY-NC-2.0",
    3: "CC-BY-NC-ND-2.0",
    4: "CC-BY-2.0",
    5: "CC-BY-SA-2.0",
    6: "CC-BY-ND-2.0",
    7: NKCR,
    8: US_GOV,
    9: CC0,
    10: PDM,
}

_URL_CODE_TO_FAMILY = {
    "by": "CC-BY",
    "by-sa": "CC-BY-SA",
    "by-nc": "CC-BY-NC",
    "by-nd": "CC-BY-ND",
    "by-nc-sa": "CC-BY-NC-SA",
    "by-nc-nd": "CC-BY-NC-ND",
    "by-nd-nc": "CC-BY-NC-ND",  # the CC 1.0 spelling
}
_FAMILY_TO_URL_CODE = {family: code for code, family in _URL_CODE_TO_FAMILY.items() if code != "by-nd-nc"}

_NON_CC_URLS = {
    "creativecommons.org/publicdomain/zero/1.0": CC0,
    "creativecommons.org/publicdomain/mark/1.0": PDM,
    "flickr.com/commons/usage": NKCR,
    "usa.gov/copyright.shtml": US_GOV,
    "usa.gov/government-works": US_GOV,
}
CANONICAL_URLS: dict[str, str] = {
    CC0: "https://creativecommons.org/publicdomain/zero/1.0/",
    PDM: "https://creativecommons.org/publicdomain/mark/1.0/",
    NKCR: "https://www.flickr.com/commons/usage/",
    US_GOV: "https://www.usa.gov/government-works",
}

# Terms of long names (Flickr, YFCC100M, CC deeds), lower-cased, split at "-".
_TERM_WORDS = {
    "attribution": "by",
    "sharealike": "sa",
    "share alike": "sa",
    "noncommercial": "nc",
    "non commercial": "nc",
    "noderivs": "nd",
    "noderivatives": "nd",
    "no derivs": "nd",
    "no derivatives": "nd",
}
_EXACT_NAMES = {
    "all rights reserved": ARR,
    "no known copyright restrictions": NKCR,
    "united states government work": US_GOV,
    "us government work": US_GOV,
    "public domain dedication (cc0)": CC0,
    "public domain dedication": CC0,
    "cc0": CC0,
    "cc0 1.0": CC0,
    "cc0 1.0 universal": CC0,
    "cc0 universal": CC0,
    "creative commons zero": CC0,
    "public domain mark": PDM,
    "public domain mark 1.0": PDM,
    "pdm": PDM,
    "pdm 1.0": PDM,
    "arr": ARR,
    "nkcr": NKCR,
    "us gov": US_GOV,
}
_IDS_LOWER = {license_id.lower(): license_id for license_id in ALL_IDS if license_id != UNKNOWN}
_VERSION_RE = re.compile(r"\b([1-4]\.[05])\b")
_SPDX_RE = re.compile(r"^cc[ -]by((?:[ -](?:nc|nd|sa))*)[ -]([1-4]\.[05])(?:[ -][a-z]{2,5})?$")
_JURISDICTION = re.compile(r"[a-z]{2}|scotland|igo")
_DEED = re.compile(r"(deed|legalcode)(\.[a-z]{2,3}([_-][a-z]{2,4})?)?")
_SHORT_TERMS = {"nc", "nd", "sa"}


def family_of(license_id: str) -> str:
    """``CC-BY-SA-4.0`` -> ``CC-BY-SA``; non-CC ids are their own family."""
    for version in CC_VERSIONS:
        if license_id.endswith("-" + version) and license_id[: -len(version) - 1] in CC_FAMILIES:
            return license_id[: -len(version) - 1]
    return license_id


def _cc_id(terms: Iterable[str], version: str | None) -> str:
    terms = set(terms)
    if not terms <= _SHORT_TERMS or version not in CC_VERSIONS:
        return UNKNOWN
    if "sa" in terms and "nd" in terms:
        return UNKNOWN  # no such license
    family = "CC-BY" + "".join(f"-{t.upper()}" for t in ("nc", "nd", "sa") if t in terms)
    return f"{family}-{version}"


def _from_url(text: str) -> str:
    parts = urlsplit(text if "://" in text else "//" + text)
    host = (parts.hostname or "").removeprefix("www.")
    path = [segment for segment in parts.path.split("/") if segment]
    where = "/".join([host, *path])
    for prefix, license_id in _NON_CC_URLS.items():
        if where == prefix or where.startswith(prefix + "/"):
            return license_id
    if host != "creativecommons.org" or len(path) < 3 or path[0] != "licenses":
        return UNKNOWN
    family = _URL_CODE_TO_FAMILY.get(path[1])
    version = path[2]
    rest = path[3:]
    if rest and _JURISDICTION.fullmatch(rest[0]):
        rest = rest[1:]
    if len(rest) > 1 or (rest and not _DEED.fullmatch(rest[0])):
        return UNKNOWN
    if family is None or version not in CC_VERSIONS:
        return UNKNOWN
    return f"{family}-{version}"


def _from_name(text: str) -> str:
    words = re.sub(r"[\s_+]+", " ", text.lower()).strip()
    words = re.sub(r"\s*(licen[cs]e)$", "", words).strip()
    if words in _EXACT_NAMES:
        return _EXACT_NAMES[words]
    spdx = _SPDX_RE.match(words.replace("_", "-"))
    if spdx:
        terms = [t for t in re.split(r"[ -]", spdx.group(1)) if t]
        return _cc_id(terms, spdx.group(2))
    # Long form: optional "creative commons", then "attribution[-term...]", optional version and "international".
    long_form = re.sub(r"^creative commons\s+", "", words)
    long_form = re.sub(r"\s+(international|unported|generic)$", "", long_form)
    version_match = _VERSION_RE.search(long_form)
    version = version_match.group(1) if version_match else None
    body = _VERSION_RE.sub("", long_form).strip()
    body = re.sub(r"\s+(international|unported|generic)$", "", body).strip()
    chunks = [chunk.strip() for chunk in re.split(r"\s*-\s*", body) if chunk.strip()]
    if not chunks or chunks[0] != "attribution":
        return UNKNOWN
    terms = []
    for chunk in chunks[1:]:
        term = _TERM_WORDS.get(chunk)
        if term is None or term == "by":
            return UNKNOWN
        terms.append(term)
    if version is None:
        if body != long_form.strip():
            return UNKNOWN
        version = "2.0"  # Flickr's versionless names are its 2.0 licenses
    return _cc_id(terms, version)


def normalize_license(value: object) -> str:
    """Normalise one license value (Flickr id, name, URL, SPDX id...) to a license id; ``unknown`` if unsure."""
    if value is None or isinstance(value, bool):
        return UNKNOWN
    if isinstance(value, int):
        return FLICKR_LICENSE_IDS.get(value, UNKNOWN)
    if not isinstance(value, str):
        return UNKNOWN
    text = value.strip()
    if not text:
        return UNKNOWN
    if text.isascii() and text.isdigit() and len(text) <= 3:
        return FLICKR_LICENSE_IDS.get(int(text), UNKNOWN)
    if text.lower() in _IDS_LOWER:
        return _IDS_LOWER[text.lower()]
    if "%" in text or ("+" in text and " " not in text):
        text = unquote_plus(text)
    lowered = text.lower()
    if "://" in lowered or lowered.startswith(("creativecommons.org", "www.")):
        return _from_url(lowered)
    return _from_name(text)


def reconcile_licenses(values: Iterable[object]) -> str:
    """One id from several fields that describe the same license (e.g. YFCC's name and URL).

    Values that normalise to ``unknown`` are ignored; two known values that disagree give ``unknown``.
    """
    known = {normalize_license(value) for value in values} - {UNKNOWN}
    return known.pop() if len(known) == 1 else UNKNOWN


def license_url(license_id: str) -> str | None:
    """The canonical URL of a license id, or ``None`` for ``ARR`` / ``unknown``."""
    family = family_of(license_id)
    if family in _FAMILY_TO_URL_CODE:
        version = license_id[len(family) + 1 :]
        return f"https://creativecommons.org/licenses/{_FAMILY_TO_URL_CODE[family]}/{version}/"
    return CANONICAL_URLS.get(license_id)


def license_name(license_id: str) -> str:
    """Human-readable short name: ``CC-BY-SA-4.0`` -> ``CC BY-SA 4.0``."""
    family = family_of(license_id)
    if family in _FAMILY_TO_URL_CODE:
        version = license_id[len(family) + 1 :]
        return f"CC {_FAMILY_TO_URL_CODE[family].upper()} {version}"
    return {
        CC0: "CC0 1.0",
        PDM: "Public Domain Mark 1.0",
        US_GOV: "United States Government Work",
        NKCR: "No known copyright restrictions",
        ARR: "All rights reserved",
    }.get(license_id, "unknown license")


@dataclass(frozen=True)
class LicensePolicy:
    """Which license ids a dataset admits. ``unknown`` is never admitted."""

    name: str
    families: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()

    def allows(self, license_id: str) -> bool:
        if license_id == UNKNOWN:
            return False
        return license_id in self.ids or family_of(license_id) in self.families

    @classmethod
    def parse(cls, spec: str) -> LicensePolicy:
        """``cc-by`` (default, CC-BY-* only, as PASS), ``permissive`` (CC-BY-*, CC0, PDM, US-GOV, NKCR), or a
        comma-separated allow-list of ids and family wildcards, e.g. ``CC-BY-4.0,CC-BY-SA-*,CC0-1.0``."""
        spec = spec.strip()
        if spec in POLICIES:
            return POLICIES[spec]
        families: set[str] = set()
        ids: set[str] = set()
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item.endswith("-*") and item[:-2] in CC_FAMILIES:
                families.add(item[:-2])
            elif item in ALL_IDS and item != UNKNOWN:
                ids.add(item)
            else:
                raise ValueError(
                    f"license policy {spec!r}: {item!r} is neither a policy name ({', '.join(POLICIES)}), "
                    "a license id (e.g. CC-BY-4.0, CC0-1.0, PDM-1.0, US-GOV, NKCR) nor a family wildcard "
                    "(e.g. CC-BY-SA-*); 'unknown' can never be allowed"
                )
        if not families and not ids:
            raise ValueError(f"license policy {spec!r} admits nothing")
        return cls(name=spec, families=frozenset(families), ids=frozenset(ids))


POLICIES: dict[str, LicensePolicy] = {
    "cc-by": LicensePolicy("cc-by", families=frozenset({"CC-BY"})),
    "permissive": LicensePolicy("permissive", families=frozenset({"CC-BY"}), ids=frozenset({CC0, PDM, US_GOV, NKCR})),
}
