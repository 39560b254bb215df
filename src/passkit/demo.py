"""The offline demo: the end-to-end path that exists today, on real photos shipped inside a PyPI package.

Pool: scikit-learn's two sample photos (Flickr, CC BY 2.0, attribution in the package's images/README.txt),
plus pool rows without images that carry the other license and attribution forms real pools have, so that the
policy and attribution checks show their rejects. Path: pool rows -> keys -> license policy -> attribution
check -> webdataset shard + manifest -> verification (tar vs manifest, sha256) -> attribution strings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from passkit.core import reasons
from passkit.core.attribution import Attribution
from passkit.core.keys import make_key
from passkit.core.licenses import LicensePolicy
from passkit.core.manifest import ManifestBuilder, write_manifest
from passkit.core.sample import Sample
from passkit.core.shards import ShardPaths, ShardReport, verify_shard
from passkit.core.tar import ShardWriter


@dataclass(frozen=True)
class PoolRow:
    photo_id: str
    creator: str
    title: str
    page_url: str
    license: str | int  # as the pool spells it
    image: str | None = None  # file inside sklearn/datasets/images, or None for a metadata-only row


# Attribution as documented in scikit-learn's sklearn/datasets/images/README.txt. Its "Attribution" line for
# flower.jpg repeats china.jpg's author, while its links name the Flickr account vultilion: we follow the links.
DEMO_POOL = (
    PoolRow(
        "6061409035",
        "danielbuechele",
        "",
        "https://www.flickr.com/photos/danielbuechele/6061409035/",
        "http://creativecommons.org/licenses/by/2.0/",
        "china.jpg",
    ),
    PoolRow(
        "6056698931",
        "vultilion",
        "",
        "https://www.flickr.com/photos/vultilion/6056698931/",
        "Attribution+License",
        "flower.jpg",
    ),
    PoolRow("nc-example", "someone", "Harbour", "https://www.flickr.com/photos/someone/1/", 2),
    PoolRow("arr-example", "someone", "Street", "https://www.flickr.com/photos/someone/2/", "All Rights Reserved"),
    PoolRow("odd-license", "someone", "Lake", "https://www.flickr.com/photos/someone/3/", "see website"),
    PoolRow("no-creator", "", "Forest", "https://www.flickr.com/photos/x/4/", "CC BY 4.0"),
)


@dataclass
class DemoResult:
    out: Path
    pool_rows: int
    counts: dict[str, int]
    report: ShardReport
    attributions: list[str]


def _sample_image(name: str) -> bytes:
    try:
        images = resources.files("sklearn.datasets.images")
    except ModuleNotFoundError as error:
        raise RuntimeError("the demo pool ships with scikit-learn: pip install 'passkit[demo]'") from error
    return images.joinpath(name).read_bytes()


def run_demo(out: Path, policy: str = "cc-by") -> DemoResult:
    out.mkdir(parents=True, exist_ok=True)
    license_policy = LicensePolicy.parse(policy)
    shard = ShardPaths(out / "shards", 0)
    manifest = ManifestBuilder()
    attributions = []
    keys = []
    with ShardWriter(shard.tar) as writer:
        for row in DEMO_POOL:
            key = make_key("demo", row.photo_id)
            keys.append(key)
            attribution = Attribution.from_fields(
                creator=row.creator, title=row.title, page_url=row.page_url, license=row.license
            )
            if not license_policy.allows(attribution.license):
                manifest.rejected(key, reasons.LICENSE_NOT_ALLOWED, license=attribution.license)
                continue
            incomplete = attribution.check()
            if incomplete:
                manifest.rejected(key, incomplete, license=attribution.license)
                continue
            if row.image is None:
                raise AssertionError(f"demo pool row {row.photo_id} is admitted but has no image")
            data = _sample_image(row.image)
            writer.write(Sample.build(key, jpg=data, json=attribution.to_dict()))
            manifest.kept(key, license=attribution.license, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
            attributions.append(attribution.tasl())
    write_manifest(shard.manifest, manifest, expected_keys=keys)
    report = verify_shard(shard)
    return DemoResult(out, len(DEMO_POOL), report.counts, report, attributions)
