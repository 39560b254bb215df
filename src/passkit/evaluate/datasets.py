"""Labeled evaluation datasets behind one interface: image folders, webdataset shards with a ``cls`` field,
and the standard benchmarks when their files are on disk (CIFAR-10/100, STL-10 through torchvision; Places205 and
ImageNet in their usual folder layouts). Nothing is downloaded.

A dataset is a list of items with integer labels and class names. Its *file list hash* (sha256 over the sorted
items, their labels and sizes) identifies it in results and in the feature cache.

Specs (what ``--train`` / ``--val`` accept): a folder with one sub-folder per class; a ``.tar`` or a folder of
``.tar`` shards whose samples carry ``<key>.cls``; ``cifar10:ROOT``, ``cifar100:ROOT``, ``stl10:ROOT``,
``imagenet:ROOT`` (``ROOT/train``, ``ROOT/val`` class folders), ``places205:ROOT`` (images + the
``trainvalsplit_places205/{train,val}_places205.csv`` lists), ``folder:DIR``, ``wds:PATH``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from passkit.core.sample import IMAGE_EXTENSIONS
from passkit.core.tar import split_member_name

IMAGE_SUFFIXES = tuple(f".{ext}" for ext in IMAGE_EXTENSIONS)
TORCHVISION_SETS = ("cifar10", "cifar100", "stl10")
SPLIT_NAMES = ("train", "val", "validation", "test")
NAMED = (*TORCHVISION_SETS, "imagenet", "places205", "folder", "wds")


class DatasetError(ValueError):
    """An evaluation dataset that cannot be read as given."""


@dataclass
class LabeledDataset:
    """Items (paths, tar members or array rows) with labels; ``load(i)`` returns the RGB image."""

    name: str
    split: str
    source: str
    classes: list[str]
    labels: np.ndarray
    items: Sequence[Any]
    kind: str  # "files" | "tar" | "array"
    list_sha256: str = ""
    array: Any = field(default=None, repr=False)  # torchvision dataset for kind "array"

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> Image.Image:
        if self.kind == "files":
            with Image.open(self.items[index]) as image:
                return image.convert("RGB")
        if self.kind == "tar":
            path, offset, size = self.items[index]
            with Path(path).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(size)
            with Image.open(io.BytesIO(data)) as image:
                return image.convert("RGB")
        image, _ = self.array[index]
        return image.convert("RGB")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "source": self.source,
            "n": len(self),
            "classes": len(self.classes),
            "file_list_sha256": self.list_sha256,
        }

    def with_classes(self, classes: list[str]) -> LabeledDataset:
        """The same items labeled by their index in ``classes`` (a val set aligned with its train set's classes)."""
        if classes == self.classes:
            return self
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(self.classes) - set(index))
        if unknown:
            raise DatasetError(f"{self.source}: classes not in the training set: {', '.join(unknown[:10])}")
        remap = np.array([index[name] for name in self.classes], dtype=np.int64)
        return LabeledDataset(
            self.name, self.split, self.source, classes, remap[self.labels], self.items, self.kind,
            self.list_sha256, self.array,
        )  # fmt: skip


def _digest(lines: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def image_folder(root: str | Path, name: str | None = None, split: str = "") -> LabeledDataset:
    """``root/<class>/**/<image>``: classes are the sub-folder names, sorted."""
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels, lines = [], [], []
    for label, class_name in enumerate(classes):
        for path in sorted((folder / class_name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                paths.append(str(path))
                labels.append(label)
                lines.append(f"{path.relative_to(folder).as_posix()}\t{class_name}\t{path.stat().st_size}")
    if not paths:
        raise DatasetError(f"{folder}: no images in class sub-folders (expected {folder}/<class>/<image>)")
    default_name = folder.resolve().parent.name if folder.name.lower() in SPLIT_NAMES else folder.name
    return LabeledDataset(
        name or default_name, split or folder.name, str(folder), classes, np.asarray(labels, dtype=np.int64),
        paths, "files", _digest(lines),
    )  # fmt: skip


def _class_sort_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def webdataset_shards(path: str | Path, name: str | None = None, split: str = "") -> LabeledDataset:
    """Samples of one ``.tar`` or of every ``.tar`` in a folder (or its ``shards/``) that have an image and a
    ``cls`` part (an integer or a class name). Images are read in place: tar members are located once."""
    root = Path(path)
    if root.is_dir() and (root / "shards").is_dir():
        root = root / "shards"
    tars = [root] if root.is_file() else sorted(root.glob("*.tar"))
    if not tars:
        raise DatasetError(f"{path}: no .tar shards")
    items, names, lines = [], [], []
    for tar in tars:
        samples: dict[str, dict[str, Any]] = {}
        try:
            with tarfile.open(tar, "r:") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    try:
                        key, ext = split_member_name(member.name)
                    except ValueError:
                        continue
                    ext = ext.lower()
                    if ext == "cls":
                        reader = archive.extractfile(member)
                        assert reader is not None
                        samples.setdefault(key, {})["cls"] = reader.read().decode("utf-8").strip()
                    elif ext in IMAGE_EXTENSIONS and "image" not in samples.get(key, {}):
                        samples.setdefault(key, {})["image"] = (str(tar), member.offset_data, member.size)
        except (tarfile.TarError, OSError, UnicodeDecodeError) as error:
            raise DatasetError(f"{tar}: unreadable shard ({error})") from error
        for key in sorted(samples):
            sample = samples[key]
            if "image" in sample and sample.get("cls"):
                items.append(sample["image"])
                names.append(sample["cls"])
                lines.append(f"{tar.name}\t{key}\t{sample['cls']}\t{sample['image'][2]}")
    if not items:
        raise DatasetError(f"{path}: no samples with both an image and a .cls label")
    classes = sorted(set(names), key=_class_sort_key)
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[c] for c in names], dtype=np.int64)
    return LabeledDataset(
        name or root.stem, split or "shards", str(path), classes, labels, items, "tar", _digest(lines)
    )


def torchvision_dataset(name: str, root: str | Path, split: str) -> LabeledDataset:
    """CIFAR-10/100 (split train|test) or STL-10 (train|test) from files already in ``root`` (no download)."""
    from torchvision import datasets

    train = split == "train"
    try:
        if name == "cifar10":
            data: Any = datasets.CIFAR10(str(root), train=train, download=False)
        elif name == "cifar100":
            data = datasets.CIFAR100(str(root), train=train, download=False)
        elif name == "stl10":
            data = datasets.STL10(str(root), split="train" if train else "test", download=False)
        else:
            raise DatasetError(f"unknown torchvision dataset {name!r} (one of {', '.join(TORCHVISION_SETS)})")
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise DatasetError(f"{name} not found in {root} ({error}); passkit never downloads datasets") from error
    targets = np.asarray(data.targets if hasattr(data, "targets") else data.labels, dtype=np.int64)
    digest = hashlib.sha256(f"{name}:{split}".encode())
    digest.update(np.ascontiguousarray(data.data).tobytes())
    digest.update(targets.tobytes())
    return LabeledDataset(
        name, "train" if train else "test", f"{name}:{root}", list(data.classes), targets,
        range(len(targets)), "array", digest.hexdigest(), data,
    )  # fmt: skip


PLACES_IMAGE_DIRS = ("images256", "images", "data/vision/torralba/deeplearning/images256")


def places205(root: str | Path, split: str) -> LabeledDataset:
    """Places205 as distributed: ``trainvalsplit_places205/{train,val}_places205.csv`` ("a/abbey/x.jpg 0" lines)
    and the images under ``images256/`` (or ``images/``)."""
    base = Path(root)
    which = "train" if split == "train" else "val"
    listing = base / "trainvalsplit_places205" / f"{which}_places205.csv"
    if not listing.exists():
        raise DatasetError(f"{listing}: missing (expected the Places205 train/val split lists)")
    image_root = next((base / d for d in PLACES_IMAGE_DIRS if (base / d).is_dir()), None)
    if image_root is None:
        raise DatasetError(f"{base}: no image folder ({', '.join(PLACES_IMAGE_DIRS)})")
    paths, labels, names = [], [], {}
    for number, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        relative, _, label = line.strip().rpartition(" ")
        if not relative or not label.isdigit():
            raise DatasetError(f"{listing}:{number}: expected 'path label', got {line!r}")
        paths.append(str(image_root / relative))
        labels.append(int(label))
        names.setdefault(int(label), "/".join(Path(relative).parts[1:-1]) or label)
    classes = [names.get(i, str(i)) for i in range(max(names) + 1)]
    return LabeledDataset(
        "places205", which, str(base), classes, np.asarray(labels, dtype=np.int64), paths, "files",
        _digest(listing.read_text().splitlines()),
    )  # fmt: skip


def open_dataset(spec: str | Path, split: str = "train") -> LabeledDataset:
    """A dataset from a CLI spec (see the module doc); ``split`` is train | val (the test split where that is
    what a benchmark evaluates on)."""
    text = str(spec)
    prefix, sep, rest = text.partition(":")
    if sep and prefix in NAMED and rest:
        if prefix in TORCHVISION_SETS:
            return torchvision_dataset(prefix, rest, "train" if split == "train" else "test")
        if prefix == "places205":
            return places205(rest, split)
        if prefix == "imagenet":
            return image_folder(Path(rest) / ("train" if split == "train" else "val"), "imagenet", split)
        if prefix == "wds":
            return webdataset_shards(rest, split=split)
        return image_folder(rest, split=split)
    path = Path(text)
    if not path.exists():
        raise DatasetError(f"{text}: no such file or folder (or dataset spec NAME:ROOT, NAME in {', '.join(NAMED)})")
    if path.is_file() or any(path.glob("*.tar")) or (path / "shards").is_dir():
        return webdataset_shards(path, split=split)
    return image_folder(path, split=split)


def open_pair(train: str | Path, val: str | Path) -> tuple[LabeledDataset, LabeledDataset]:
    """Train and val sets with val labels expressed in the training set's classes."""
    train_set = open_dataset(train, "train")
    val_set = open_dataset(val, "val").with_classes(train_set.classes)
    return train_set, val_set


def write_digits_imagefolder(
    out: str | Path, size: int = 32, val_fraction: float = 0.2, seed: int = 0
) -> tuple[Path, Path]:
    """scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes) as ``out/train/<digit>/*.png``
    and ``out/val/<digit>/*.png``, upscaled to ``size`` px, with a seeded per-class split. Written into a temporary
    folder and renamed, so ``out`` is either complete or absent; an existing ``out`` is reused."""
    destination = Path(out)
    train_dir, val_dir = destination / "train", destination / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        return train_dir, val_dir
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for label in range(10):
            indices = np.flatnonzero(digits.target == label)
            rng.shuffle(indices)
            n_val = round(len(indices) * val_fraction)
            for position, index in enumerate(indices):
                split = "val" if position < n_val else "train"
                folder = temp / split / str(label)
                folder.mkdir(parents=True, exist_ok=True)
                pixels = (digits.images[index] / 16 * 255).astype(np.uint8)
                image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR)
                image.save(folder / f"digit-{index:04d}.png")
        temp.replace(destination)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return train_dir, val_dir
