"""Stage 2: candidates -> webdataset shards, fetched politely, resumable, one manifest row per candidate."""

from passkit.download.config import DownloadConfig
from passkit.download.runner import DownloadError, DownloadReport, download, final_rows, first_pass_complete

__all__ = ["DownloadConfig", "DownloadError", "DownloadReport", "download", "final_rows", "first_pass_complete"]
