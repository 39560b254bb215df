"""Streaming training data: passkit release shards, passkit/raw webdataset shards, or image folders.

The dataset is a list of *units* (a tar shard, or one image file) with known sample counts. Each epoch the units
are put in a seeded random order and their concatenation — the epoch's global stream of N samples — is cut into
``ranks x workers`` contiguous slices of exactly ``L = floor(N / (ranks * workers * batch)) * batch`` samples.
Every DataLoader worker of every rank therefore yields the same number of full batches (no rank waits on a
collective that another never reaches: the webdataset pitfall), each sample is seen at most once per epoch and at
most ``ranks * workers * batch - 1`` are left out. A worker reads only the shards overlapping its slice and mixes
them through a seeded shuffle buffer. Augmentations draw from a generator seeded by (seed, epoch, slot, position),
so a resumed run reproduces the same views and can skip already-consumed samples without decoding them.

JPEGs are decoded at reduced size (PIL draft mode) when the largest crop still gets full resolution.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from passkit.core.manifest import KEPT, read_manifest
from passkit.core.sample import IMAGE_EXTENSIONS
from passkit.core.shards import list_shards
from passkit.core.tar import read_shard, split_member_name

log = logging.getLogger(__name__)

SHARD_PREFIXES = ("", "pass-")
IMAGE_SUFFIXES = tuple(f".{ext}" for ext in IMAGE_EXTENSIONS)


class DataError(ValueError):
    """The training data cannot be used as given (empty, too small for the batch layout, unreadable)."""


@dataclass(frozen=True)
class Unit:
    path: str
    kind: str  # "tar" | "file"
    count: int


def _count_tar_images(path: Path) -> int:
    """Number of samples with an image part, from the tar headers only (data blocks are seeked over)."""
    keys = set()
    with tarfile.open(path, "r:") as archive:
        for member in archive:
            if not member.isfile():
                continue
            try:
                key, ext = split_member_name(member.name)
            except ValueError:
                continue
            if ext.lower() in IMAGE_EXTENSIONS:
                keys.add(key)
    return len(keys)


def _manifest_kept(path: Path) -> int:
    table = read_manifest(path, validate=False)
    return int(pc.sum(pc.equal(table.column("status"), KEPT)).as_py() or 0)


def discover_units(data: str | Path) -> list[Unit]:
    """Units of a release folder (``shards/``), a shard folder, a single ``.tar``, or an image folder."""
    root = Path(data)
    if root.is_file():
        if root.suffix != ".tar":
            raise DataError(f"{root}: expected a .tar shard or a folder")
        return [Unit(str(root), "tar", _count_tar_images(root))]
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder")
    if (root / "shards").is_dir():
        root = root / "shards"
    tars = sorted(root.glob("*.tar"))
    if tars:
        done = [shard for prefix in SHARD_PREFIXES for shard in list_shards(root, prefix) if shard.tar.exists()]
        if done:
            unfinished = len(tars) - len(done)
            if unfinished:
                log.warning("%s: %d shard(s) without a manifest are unfinished and left out", root, unfinished)
            units = [Unit(str(shard.tar), "tar", _manifest_kept(shard.manifest)) for shard in done]
        else:
            units = [Unit(str(path), "tar", _count_tar_images(path)) for path in tars]
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        units = [Unit(str(path), "file", 1) for path in files]
    units = [unit for unit in units if unit.count > 0]
    if not units:
        raise DataError(f"{data}: no images found (expected shards NNNNN.tar, a release, or image files)")
    return units


def slice_length(total: int, slots: int, batch_size: int) -> int:
    """Samples per (rank, worker) slice per epoch: a multiple of the batch, equal for every slice."""
    return (total // (slots * batch_size)) * batch_size


def epoch_plan(
    units: Sequence[Unit], epoch: int, seed: int, slots: int, per_slot: int
) -> list[list[tuple[int, int, int]]]:
    """For each slot: ``(unit index, first sample, end sample)`` ranges covering exactly ``per_slot`` samples."""
    order = np.random.default_rng([seed, epoch, 0x5EED]).permutation(len(units))
    plan: list[list[tuple[int, int, int]]] = [[] for _ in range(slots)]
    position = 0
    for unit_index in order:
        count = units[unit_index].count
        start, end = position, position + count
        first_slot, last_slot = start // per_slot, min((end - 1) // per_slot, slots - 1)
        for slot in range(first_slot, last_slot + 1):
            lo, hi = max(start, slot * per_slot), min(end, (slot + 1) * per_slot)
            if lo < hi and slot < slots:
                plan[slot].append((int(unit_index), lo - start, hi - start))
        position = end
        if position >= slots * per_slot:
            break
    return plan


def _iter_raw(unit: Unit, first: int, end: int) -> Iterator[tuple[str, bytes]]:
    if unit.kind == "file":
        yield unit.path, Path(unit.path).read_bytes()
        return
    index = 0
    for sample in read_shard(unit.path, strict_keys=False):
        ext = sample.image_ext()
        if ext is None:
            continue
        if index >= end:
            return
        if index >= first:
            yield f"{unit.path}:{sample.key}", sample.parts[ext]
        index += 1


def decode_image(data: bytes, min_side: int = 0) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    if min_side and image.format == "JPEG":
        image.draft("RGB", (min_side, min_side))
    return image.convert("RGB")


class ViewStream(IterableDataset):
    """Yields lists of augmented views; one instance per rank, split over its DataLoader workers."""

    def __init__(
        self,
        units: Sequence[Unit],
        transform: Callable[[Image.Image], list[torch.Tensor]],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        shuffle_buffer: int = 1000,
        decode_min_side: int = 0,
    ) -> None:
        super().__init__()
        self.units = list(units)
        self.transform = transform
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.workers = max(workers, 1)
        self.shuffle_buffer = shuffle_buffer
        self.decode_min_side = decode_min_side
        self.total = sum(unit.count for unit in self.units)
        self.per_slot = slice_length(self.total, world_size * self.workers, batch_size)
        if self.per_slot == 0:
            raise DataError(
                f"{self.total} images cannot fill one batch of {batch_size} for each of {world_size} rank(s) x "
                f"{self.workers} worker(s); lower --batch-size or --workers"
            )
        self.epoch = 0
        self.skip_batches = 0

    @property
    def batches_per_epoch(self) -> int:
        """Batches one rank receives per epoch (all its workers together)."""
        return self.workers * self.per_slot // self.batch_size

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        """Start the next iteration at ``epoch``, after the first ``batches_done`` batches of this rank."""
        self.epoch = epoch
        self.skip_batches = batches_done

    def _raw_stream(self, slot: int) -> Iterator[tuple[str, bytes]]:
        plan = epoch_plan(self.units, self.epoch, self.seed, self.world_size * self.workers, self.per_slot)[slot]
        rng = np.random.default_rng([self.seed, self.epoch, slot, 0xB0F])
        buffer: list[tuple[str, bytes]] = []
        for unit_index, first, end in plan:
            for item in _iter_raw(self.units[unit_index], first, end):
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(item)
                    continue
                pick = int(rng.integers(len(buffer)))
                buffer[pick], item = item, buffer[pick]
                yield item
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise DataError(f"dataset planned for {self.workers} workers, loader has {info.num_workers}")
        # The loader takes batch j from worker j % workers. Resuming after b batches, loader worker w plays the
        # part of worker (w + b) % workers of the uninterrupted epoch, whose first batches were already consumed.
        role = (worker + self.skip_batches) % self.workers
        slot = self.rank * self.workers + role
        skip = len(range(role, self.skip_batches, self.workers)) * self.batch_size
        pending_bad = 0
        last_good: tuple[Image.Image, int] | None = None
        for position, (name, data) in enumerate(self._raw_stream(slot)):
            if position < skip:
                continue
            try:
                image = decode_image(data, self.decode_min_side)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                # Keep every slice the same length: the next good image stands in for the bad one.
                log.warning("skipping unreadable image %s: %s", name, error)
                pending_bad += 1
                continue
            for repeat in range(pending_bad + 1):
                yield self._augment(image, slot, position, repeat)
            pending_bad, last_good = 0, (image, position)
        if pending_bad:
            if last_good is None:
                raise DataError(f"slot {slot}: none of its {pending_bad} image(s) this epoch could be decoded")
            for repeat in range(1, pending_bad + 1):  # trailing bad images: the last good one stands in
                yield self._augment(last_good[0], slot, last_good[1], -repeat)

    def _augment(self, image: Image.Image, slot: int, position: int, repeat: int) -> list[torch.Tensor]:
        seed = hash((self.seed, self.epoch, slot, position, repeat)) & 0x7FFF_FFFF_FFFF_FFFF
        # Only the CPU generator: the augmentations draw from it alone, and torch.manual_seed would also queue a
        # lazy seed for every accelerator backend (CUDA, XPU, MTIA) with a formatted stack trace -- ~1.5 ms an image.
        if get_worker_info() is not None:
            torch.default_generator.manual_seed(seed)
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):  # in the training process: leave its RNG stream untouched
            torch.default_generator.manual_seed(seed)
            return self.transform(image)


def collate_views(samples: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.stack([views[i] for views in samples]) for i in range(len(samples[0]))]


def make_loader(stream: ViewStream, workers: int, pin_memory: bool = False) -> DataLoader:
    return DataLoader(
        stream,
        batch_size=stream.batch_size,
        num_workers=workers,
        collate_fn=collate_views,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        drop_last=False,
    )
