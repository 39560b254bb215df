"""The candidates.parquet contract: the columns every admitted candidate has, in DESIGN order."""

CANDIDATE_COLUMNS: tuple[str, ...] = (
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
)
