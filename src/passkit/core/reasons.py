"""Reject reason codes (contract): ``stage:detail``, kept in every manifest row that is not ``kept``."""

from __future__ import annotations

import re

REASON_PATTERN = re.compile(r"^[a-z]+(:[a-z0-9][a-z0-9_.,+-]*)*$")

LICENSE_NOT_ALLOWED = "license:not-allowed"
ATTRIBUTION_INCOMPLETE = "attribution:incomplete"
METADATA_MALFORMED = "metadata:malformed"
METADATA_VIDEO = "metadata:video"
DOWNLOAD_TIMEOUT = "download:timeout"
DOWNLOAD_TOO_LARGE = "download:too-large"
DOWNLOAD_NOT_IMAGE = "download:not-image"
DOWNLOAD_OPT_OUT = "download:opt-out"
IMAGE_CORRUPT = "image:corrupt"
IMAGE_BOMB = "image:bomb"
IMAGE_TOO_SMALL = "image:too-small"
IMAGE_SINGLE_COLOUR = "image:single-colour"
HUMANS_FACE = "humans:face"
HUMANS_PERSON = "humans:person"
PII_TEXT = "pii:text"
PII_PLATE = "pii:plate"
NSFW = "nsfw"
DEDUP_EXACT = "dedup:exact"
DEDUP_NEAR = "dedup:near"
DEDUP_EVAL_SET = "dedup:eval-set"
CAP_CREATOR = "cap:creator"
REVIEW_HUMAN = "review:human"
REVIEW_OTHER = "review:other"
TAKEDOWN = "takedown"


def download_http(status: int) -> str:
    return f"download:http-{int(status)}"


def attribution_incomplete(fields: list[str] | tuple[str, ...]) -> str:
    """``attribution:incomplete:creator,page_url`` — the missing fields, in the order given."""
    return f"{ATTRIBUTION_INCOMPLETE}:{','.join(fields)}" if fields else ATTRIBUTION_INCOMPLETE


def is_valid_reason(reason: object) -> bool:
    return isinstance(reason, str) and REASON_PATTERN.match(reason) is not None


def reason_stage(reason: str) -> str:
    """``download:http-404`` -> ``download``."""
    return reason.split(":", 1)[0]
