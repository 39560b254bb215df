"""The demo's pool: real photographs shipped inside scikit-image, scikit-learn and matplotlib, or a user's folder.

Every fact below (author, title, license, source page) is what the shipping package documents, cited per photo:
scikit-image in the docstrings of ``skimage.data.<name>``, scikit-learn in ``sklearn/datasets/images/README.txt``,
matplotlib in the pull request that added its sample photo. Where a package documents no license, the photo
carries none, and select rejects it (``license:not-allowed``) as it would any such pool record.

``has_people`` was set by looking at each photo; the demo checks that every photo with people is removed.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow.compute as pc

from passkit.core.licenses import CC0, NKCR, PDM, UNKNOWN, US_GOV

SKIMAGE_DOCS = "https://scikit-image.org/docs/stable/api/skimage.data.html"


class PoolError(RuntimeError):
    """The pool cannot be built (a package or folder is missing)."""


@dataclass(frozen=True)
class PoolPhoto:
    """One pool record: where its bytes are, its attribution as documented, and whether it shows people."""

    name: str
    photo_id: int  # YFCC photo ids are numbers: the Flickr id where the photo is on Flickr
    creator: str
    title: str
    page_url: str
    license: str  # license id (passkit.core.licenses); UNKNOWN where the package documents none
    documented_as: str  # the license statement exactly as the package words it
    has_people: bool | None  # None: not labelled (a folder pool without labels.csv)
    package: str  # skimage | sklearn | matplotlib | folder
    resource: str  # file inside the package's data folder, or an absolute path for a folder pool
    date_taken: str = ""  # "YYYY-MM-DD HH:MM:SS" where known

    def path(self) -> Path:
        if self.package == "folder":
            return Path(self.resource)
        anchor = {
            "skimage": "skimage.data",
            "sklearn": "sklearn.datasets.images",
            "matplotlib": "matplotlib",
        }[self.package]
        try:
            root = resources.files(anchor)
        except ModuleNotFoundError as error:
            extra = "pip install 'passkit[demo]' (scikit-image, scikit-learn, matplotlib)"
            raise PoolError(f"the demo pool needs the {self.package} package: {extra}") from error
        path = Path(str(root.joinpath(self.resource)))
        if not path.is_file():
            raise PoolError(f"{self.name}: {path} is not in the installed {self.package} package")
        return path

    def read_bytes(self) -> bytes:
        return self.path().read_bytes()

    @property
    def extension(self) -> str:
        return Path(self.resource).suffix.lstrip(".").lower()


def _skimage(name: str, photo_id: int, file: str, **fields: object) -> PoolPhoto:
    # Page: the photo's own page where the docstring links one, else the package's documentation of it.
    fields.setdefault("page_url", f"{SKIMAGE_DOCS}#skimage.data.{name}")
    return PoolPhoto(name=name, photo_id=photo_id, package="skimage", resource=file, **fields)  # type: ignore[arg-type]


# Photo ids: the Flickr id where the package names the Flickr photo (sklearn's two, astronaut: flic.kr/p/r9qvLn is
# Flickr's base-58 short form of 16504233985, rocket), else 1..99 in pool order.
DEFAULT_POOL: tuple[PoolPhoto, ...] = (
    # skimage.data.astronaut: "This image was downloaded from the NASA Great Images database
    # <https://flic.kr/p/r9qvLn>. No known copyright restrictions, released into the public domain."
    _skimage(
        "astronaut",
        16504233985,
        "astronaut.png",
        creator="NASA",
        title="Eileen Collins",
        page_url="https://flic.kr/p/r9qvLn",
        license=NKCR,
        documented_as="No known copyright restrictions, released into the public domain.",
        has_people=True,
    ),
    # skimage.data.camera: "No copyright restrictions. CC0 by the photographer (Lav Varshney)." The image replaced
    # the old cameraman in 0.18, see scikit-image issue 3927 (linked by the docstring).
    _skimage(
        "camera",
        1,
        "camera.png",
        creator="Lav Varshney",
        title="camera",
        page_url="https://github.com/scikit-image/scikit-image/issues/3927",
        license=CC0,
        documented_as="No copyright restrictions. CC0 by the photographer (Lav Varshney).",
        has_people=True,
    ),
    # skimage.data.coffee: "This photograph is courtesy of Pikolo Espresso Bar. [...] No copyright restrictions.
    # CC0 by the photographer (Rachel Michetti)."
    _skimage(
        "coffee",
        2,
        "coffee.png",
        creator="Rachel Michetti",
        title="Coffee cup",
        license=CC0,
        documented_as="No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
        has_people=False,
    ),
    # skimage.data.chelsea: "No copyright restrictions. CC0 by the photographer (Stefan van der Walt)."
    _skimage(
        "chelsea",
        3,
        "chelsea.png",
        creator="Stefan van der Walt",
        title="Chelsea the cat",
        license=CC0,
        documented_as="No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
        has_people=False,
    ),
    # skimage.data.rocket: downloaded from SpaceX Photos (flickr.com/photos/spacexphotos/16511594820); "The image
    # was captured by SpaceX and released in the public domain". No legal instrument is named: the Public Domain
    # Mark is the license Flickr/YFCC have for "in the public domain" without a dedication.
    _skimage(
        "rocket",
        16511594820,
        "rocket.jpg",
        creator="SpaceX",
        title="Launch photo of DSCOVR on Falcon 9",
        page_url="https://www.flickr.com/photos/spacexphotos/16511594820/",
        license=PDM,
        documented_as="The image was captured by SpaceX and released in the public domain.",
        has_people=False,
    ),
    # skimage.data.stereo_motorcycle: Middlebury 2014 stereo benchmark (Scharstein et al.); the docstring states no
    # license, so the record has none.
    _skimage(
        "motorcycle",
        4,
        "motorcycle_left.png",
        creator="Nera Nesic, Porter Westling, Xi Wang, York Kitajima, Greg Krathwohl, Daniel Scharstein",
        title="Motorcycle (Middlebury 2014 stereo, left view)",
        page_url="http://vision.middlebury.edu/stereo/data/scenes2014/",
        license=UNKNOWN,
        documented_as="(no license stated)",
        has_people=False,
    ),
    # skimage.data.hubble_deep_field: downloaded from HubbleSite; "The image was captured by NASA and may be freely
    # used in the public domain" (NASA media guidelines): a work of the US government.
    _skimage(
        "hubble_deep_field",
        5,
        "hubble_deep_field.jpg",
        creator="NASA",
        title="Hubble eXtreme Deep Field",
        page_url="http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/",
        license=US_GOV,
        documented_as="The image was captured by NASA and may be freely used in the public domain.",
        has_people=False,
    ),
    # skimage.data.coins: downloaded from the Brooklyn Museum Collection; "No known copyright restrictions."
    _skimage(
        "coins",
        6,
        "coins.png",
        creator="Brooklyn Museum",
        title="Greek coins from Pompeii",
        page_url="https://www.brooklynmuseum.org/opencollection/archives/image/51611",
        license=NKCR,
        documented_as="No known copyright restrictions.",
        has_people=False,
    ),
    # skimage.data.clock: "Released into the public domain by the photographer (Stefan van der Walt)."
    _skimage(
        "clock",
        7,
        "clock_motion.png",
        creator="Stefan van der Walt",
        title="Motion blurred clock",
        license=PDM,
        documented_as="Released into the public domain by the photographer (Stefan van der Walt).",
        has_people=False,
    ),
    # skimage.data.immunohistochemistry: acquired at the Center for Microscopy And Molecular Imaging (CMMI);
    # "No known copyright restrictions."
    _skimage(
        "immunohistochemistry",
        8,
        "ihc.png",
        creator="Center for Microscopy And Molecular Imaging (CMMI)",
        title="Immunohistochemical staining of colonic glands",
        license=NKCR,
        documented_as="No known copyright restrictions.",
        has_people=False,
    ),
    # skimage.data.brick / gravel: downloaded from CC0Textures, "licensed under the Creative Commons CC0 License".
    _skimage(
        "brick",
        9,
        "brick.png",
        creator="CC0Textures",
        title="Bricks25",
        page_url="https://cc0textures.com/view.php?tex=Bricks25",
        license=CC0,
        documented_as="Downloaded from CC0Textures and licensed under the Creative Commons CC0 License.",
        has_people=False,
    ),
    _skimage(
        "gravel",
        10,
        "gravel.png",
        creator="CC0Textures",
        title="Gravel04",
        page_url="https://cc0textures.com/view.php?tex=Gravel04",
        license=CC0,
        documented_as="Downloaded from CC0Textures and licensed under the Creative Commons CC0 License.",
        has_people=False,
    ),
    # skimage.data.grass: downloaded from DeviantArt (linolafett, Grass-01), "licensed under the Creative Commons
    # CC0 License".
    _skimage(
        "grass",
        11,
        "grass.png",
        creator="linolafett",
        title="Grass 01",
        page_url="https://www.deviantart.com/linolafett/art/Grass-01-434853879",
        license=CC0,
        documented_as="Downloaded from DeviantArt and licensed under the Creative Commons CC0 License.",
        has_people=False,
    ),
    # skimage.data.moon: the docstring states no author and no license.
    _skimage(
        "moon",
        12,
        "moon.png",
        creator="",
        title="Surface of the moon",
        license=UNKNOWN,
        documented_as="(no license stated)",
        has_people=False,
    ),
    # sklearn/datasets/images/README.txt: china.jpg and flower.jpg "Released under a creative commons license"
    # [https://creativecommons.org/licenses/by/2.0/], retrieved from the linked Flickr pages by Robert Layton. The
    # README's attribution line of flower.jpg repeats china.jpg's author while its links name the Flickr account
    # vultilion: we follow the links.
    PoolPhoto(
        name="china",
        photo_id=6061409035,
        creator="danielbuechele",
        title="china.jpg",
        page_url="https://www.flickr.com/photos/danielbuechele/6061409035/",
        license="CC-BY-2.0",
        documented_as="Released under a creative commons license (https://creativecommons.org/licenses/by/2.0/).",
        has_people=False,
        package="sklearn",
        resource="china.jpg",
    ),
    PoolPhoto(
        name="flower",
        photo_id=6056698931,
        creator="vultilion",
        title="flower.jpg",
        page_url="https://www.flickr.com/photos/vultilion/6056698931/",
        license="CC-BY-2.0",
        documented_as="Released under a creative commons license (https://creativecommons.org/licenses/by/2.0/).",
        has_people=False,
        package="sklearn",
        resource="flower.jpg",
    ),
    # matplotlib's mpl-data/sample_data/grace_hopper.jpg came with matplotlib pull request 1599 ("public domain
    # images of Ada Lovelace and Grace Murray Hopper", replacing Lena). The photo is the U.S. Navy's official
    # portrait of Commodore Grace M. Hopper (Naval History and Heritage Command NH 96919-KN): a US government work.
    PoolPhoto(
        name="grace_hopper",
        photo_id=13,
        creator="U.S. Navy",
        title="Commodore Grace M. Hopper, USN",
        page_url="https://github.com/matplotlib/matplotlib/pull/1599",
        license=US_GOV,
        documented_as="Public domain image (matplotlib pull request 1599).",
        has_people=True,
        package="matplotlib",
        resource="mpl-data/sample_data/grace_hopper.jpg",
    ),
)


def default_pool() -> list[PoolPhoto]:
    """The package photos, checked to be installed (a clear error names the missing package)."""
    for photo in DEFAULT_POOL:
        photo.path()
    return list(DEFAULT_POOL)


def _people_labels(folder: Path) -> dict[str, bool]:
    """``labels.csv`` (``file,has_person``) at the folder root, keyed by relative path and by file name."""
    path = folder / "labels.csv"
    if not path.is_file():
        return {}
    labels: dict[str, bool] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name, flag = row.get("file") or "", (row.get("has_person") or "").strip()
            if name and flag in ("0", "1"):
                labels[Path(name).as_posix()] = flag == "1"
                labels.setdefault(Path(name).name, flag == "1")
    return labels


def folder_pool(folder: str | os.PathLike[str]) -> list[PoolPhoto]:
    """A user's folder as the pool, read by the folder source (sidecar ``*.json`` or ``attribution.csv``).

    Images without attribution keep an empty license and are rejected by select, as in ``passkit select``.
    An optional ``labels.csv`` (``file,has_person``) tells the demo which photos show people.
    """
    from passkit.sources.folder import FolderReader

    root = Path(folder)
    if not root.is_dir():
        raise PoolError(f"--pool {root}: not a folder")
    reader = FolderReader(root)
    labels = _people_labels(root)
    photos = []
    for table in reader:
        good = table.filter(pc.is_null(table.column("malformed")))
        for number, row in enumerate(good.to_pylist(), start=1):
            relative = row["source_file"]
            raw_license = row.get("license") or UNKNOWN
            photos.append(
                PoolPhoto(
                    name=relative,
                    photo_id=number,
                    creator=row.get("creator") or "",
                    title=row.get("title") or "",
                    page_url=row.get("page_url") or "",
                    license=raw_license,
                    documented_as=row.get("license_raw") or "(no attribution found)",
                    has_people=labels.get(relative, labels.get(Path(relative).name)),
                    package="folder",
                    resource=str((root / relative).resolve()),
                )
            )
    if not photos:
        raise PoolError(f"--pool {root}: no readable images in the folder")
    return photos


def people_labelled(pool: list[PoolPhoto]) -> int:
    return sum(photo.has_people is True for photo in pool)
