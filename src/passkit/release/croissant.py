"""croissant.json: MLCommons Croissant 1.0 metadata (JSON-LD) describing the release's files and records.

Resources: ``metadata.parquet`` and every shard tar (FileObjects with sha256), the images inside the tars
(FileSets per stored format). Record sets: ``metadata`` (one record per image, the parquet's columns) and
``images`` (key + image content, keyed to the metadata).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from passkit.core.licenses import license_url
from passkit.release.checksums import file_sha256
from passkit.release.metadata import METADATA_PARQUET, column_descriptions
from passkit.release.record import ReleaseRecord
from passkit.release.summary import ReleaseSummary

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
URL_COLUMNS = ("page_url", "license_url", "url")
PASS_CITATION = (
    "@inproceedings{asano21pass, title={PASS: An ImageNet replacement for self-supervised pretraining without "
    "humans}, author={Asano, Yuki M. and Rupprecht, Christian and Zisserman, Andrew and Vedaldi, Andrea}, "
    "booktitle={NeurIPS Datasets and Benchmarks}, year={2021}}"
)


def _data_type(name: str, kind: pa.DataType) -> str:
    if name in URL_COLUMNS:
        return "sc:URL"
    if pa.types.is_integer(kind):
        return "sc:Integer"
    if pa.types.is_floating(kind):
        return "sc:Float"
    return "sc:Text"


def render_croissant(
    folder: Path, record: ReleaseRecord, summary: ReleaseSummary, digests: dict[str, str] | None = None
) -> str:
    """The JSON-LD text; ``digests``: sha256 of release files already computed (path -> hex)."""
    digests = digests if digests is not None else {}

    def sha256(name: str) -> str:
        return digests.get(name) or file_sha256(folder / name)

    stats = summary.stats()
    shards = sorted(summary.shards)
    formats = sorted(summary.formats)
    descriptions = column_descriptions(record.include_gps)
    distribution: list[dict[str, Any]] = [
        {
            "@type": "cr:FileObject",
            "@id": METADATA_PARQUET,
            "name": METADATA_PARQUET,
            "description": "One row per image: attribution (TASL), checksum, size.",
            "contentUrl": METADATA_PARQUET,
            "encodingFormat": "application/x-parquet",
            "sha256": sha256(METADATA_PARQUET),
        }
    ]
    distribution += [
        {
            "@type": "cr:FileObject",
            "@id": shard,
            "name": shard,
            "contentUrl": shard,
            "encodingFormat": "application/x-tar",
            "sha256": sha256(shard),
        }
        for shard in shards
    ]
    media = [MEDIA_TYPES.get(fmt, f"image/{fmt}") for fmt in formats]
    distribution.append(
        {
            "@type": "cr:FileSet",
            "@id": "image-files",
            "name": "image-files",
            "description": "The images inside the shards (webdataset members <key>.<ext>).",
            "containedIn": [{"@id": shard} for shard in shards],
            "encodingFormat": media[0] if len(media) == 1 else media,
            "includes": [f"*.{fmt}" for fmt in formats],
        }
    )
    metadata_fields = [
        {
            "@type": "cr:Field",
            "@id": f"metadata/{field.name}",
            "name": field.name,
            "description": descriptions.get(field.name, field.name),
            "dataType": _data_type(field.name, field.type),
            "source": {"fileObject": {"@id": METADATA_PARQUET}, "extract": {"column": field.name}},
        }
        for field in summary.schema
    ]
    image_fields: list[dict[str, Any]] = [
        {
            "@type": "cr:Field",
            "@id": "images/key",
            "name": "key",
            "description": "sample key (the member name without its extension)",
            "dataType": "sc:Text",
            "references": {"field": {"@id": "metadata/key"}},
            "source": {
                "fileSet": {"@id": "image-files"},
                "extract": {"fileProperty": "filename"},
                "transform": {"regex": r"^([a-z0-9][a-z0-9_-]*)(?:\.[a-z]+)?$"},
            },
        }
    ]
    image_fields += [
        {
            "@type": "cr:Field",
            "@id": "images/image",
            "name": "image",
            "description": "the image (EXIF-free JPEG or PNG)",
            "dataType": "sc:ImageObject",
            "source": {"fileSet": {"@id": "image-files"}, "extract": {"fileProperty": "content"}},
        }
    ]
    licenses = [license_url(license_id) or license_id for license_id, _ in stats.licenses]
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": record.name,
        "description": record.description
        or (
            f"{record.title}: {stats.images:,} photographs without people, each with a license that allows "
            "redistribution with attribution and its full attribution (TASL), for self-supervised pretraining. "
            "Built with passkit (the PASS recipe)."
        ),
        "conformsTo": CONFORMS_TO,
        "citeAs": PASS_CITATION,
        "license": licenses[0] if len(licenses) == 1 else licenses,
        "url": record.url or "https://example.invalid/unpublished",
        "version": f"{record.version}.0.0",
        "keywords": ["self-supervised learning", "pretraining", "images", "no humans", "creative commons"],
        "isLiveDataset": False,
        **({"datePublished": record.date_published} if record.date_published else {}),
        "distribution": distribution,
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": "metadata",
                "name": "metadata",
                "description": "Attribution and technical facts, one record per image.",
                "key": {"@id": "metadata/key"},
                "field": metadata_fields,
            },
            {
                "@type": "cr:RecordSet",
                "@id": "images",
                "name": "images",
                "description": "The images of the shards, keyed to the metadata.",
                "field": image_fields,
            },
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
