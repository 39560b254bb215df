"""MoCo-v2 (Chen et al. 2020): query encoder + momentum key encoder, MLP head, a queue of negatives, InfoNCE.

Official recipe: queue 65,536, key-encoder momentum 0.999, temperature 0.2, 128-d MLP head, SGD lr 0.03 per 256,
momentum 0.9, wd 1e-4, cosine. Shuffle-BN under DDP: keys are computed on a batch shuffled across ranks so that
BatchNorm statistics cannot leak which key matches which query. In one process the same effect is obtained by
running both encoders on ``shuffle_splits`` sub-batches with the key batch permuted (SplitBatchNorm-style); the
default of 1 runs each encoder once on the whole batch, where a permutation would change nothing (one BatchNorm
over the full batch is permutation-invariant), as the official code does on a single GPU.

The loss reads the queue in place, without the per-step copy of it (32 MB at 65,536 x 128) that enqueueing during
``forward`` would force: the step's keys wait in ``_pending`` and are written once the backward pass no longer
needs the queue -- at the next ``forward``, in ``after_step``, or before a ``state_dict`` is taken.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from passkit.ssl.backbones import Backbone
from passkit.ssl.distributed import all_gather_cat, broadcast, rank, world_size
from passkit.ssl.heads import MoCoHead
from passkit.ssl.losses import info_nce
from passkit.ssl.methods.base import SSLMethod, ema_update, frozen_copy
from passkit.ssl.schedules import constant_schedule


class MoCoV2(SSLMethod):
    def __init__(
        self,
        make_backbone: Callable[[], Backbone],
        dim: int = 128,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        shuffle_splits: int = 1,
    ) -> None:
        super().__init__()
        self.backbone = make_backbone()
        self.head = MoCoHead(self.backbone.dim, dim)
        self.key_backbone = frozen_copy(self.backbone)
        self.key_head = frozen_copy(self.head)
        self.momentum = momentum
        self.temperature = temperature
        self.shuffle_splits = shuffle_splits
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self._pending: list[torch.Tensor] = []  # keys (of all ranks) waiting to enter the queue
        self.register_state_dict_pre_hook(_flush_before_state_dict)

    def method_schedules(self, epochs: int, iters_per_epoch: int) -> dict[str, np.ndarray]:
        return {"momentum": constant_schedule(self.momentum, epochs, iters_per_epoch)}

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(images)), dim=1)

    @torch.no_grad()
    def _encode_keys(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.key_head(self.key_backbone(images)), dim=1)

    @torch.no_grad()
    def _shuffled_keys(self, images: torch.Tensor) -> torch.Tensor:
        if world_size() > 1:
            everything = all_gather_cat(images)
            order = broadcast(torch.randperm(len(everything), device=images.device), 0)
            mine = order.view(world_size(), -1)[rank()]
            keys = self._encode_keys(everything[mine])
            inverse = torch.argsort(order).view(world_size(), -1)[rank()]
            return all_gather_cat(keys)[inverse]
        if self.shuffle_splits > 1:
            order = torch.randperm(len(images), device=images.device)
            keys = torch.cat([self._encode_keys(part) for part in images[order].chunk(self.shuffle_splits)])
            return keys[torch.argsort(order)]
        return self._encode_keys(images)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries of the queue with this rank's keys gathered from all ranks (a ring buffer)."""
        self.flush_queue()
        self._write_queue(all_gather_cat(keys))

    @torch.no_grad()
    def flush_queue(self) -> None:
        """Write the keys of past forward passes into the queue, oldest first."""
        while self._pending:
            self._write_queue(self._pending.pop(0))

    @torch.no_grad()
    def _write_queue(self, keys: torch.Tensor) -> None:
        """Index arithmetic stays on the device: no host sync, the keys are written in place with one index_copy_."""
        size = len(self.queue)
        keys = keys[-size:]
        index = torch.arange(len(keys), device=keys.device).add_(self.queue_ptr).remainder_(size)
        self.queue.index_copy_(0, index, keys.to(self.queue.dtype))
        self.queue_ptr.add_(len(keys)).remainder_(size)

    def forward(self, views: list[torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        self.flush_queue()  # the previous forward's backward has run: its graph no longer reads the queue
        query_images, key_images = views[0], views[1]
        if world_size() == 1 and self.shuffle_splits > 1:
            query = torch.cat([self._encode(part) for part in query_images.chunk(self.shuffle_splits)])
        else:
            query = self._encode(query_images)
        keys = self._shuffled_keys(key_images)
        dtype = self.queue.dtype  # float32 (autocast leaves buffers alone): the loss in full precision under AMP
        loss = info_nce(query.to(dtype), keys.to(dtype), self.queue, self.temperature)
        self._pending.append(all_gather_cat(keys))
        if not loss.requires_grad:  # no graph holds the queue: write now
            self.flush_queue()
        return loss, {}

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.flush_queue()
        m = float(self.schedules["momentum"][min(step, len(self.schedules["momentum"]) - 1)])
        if self._ema_pairs is None:  # built once: the parameters of both encoders, in matching order
            keys = [*self.key_backbone.parameters(), *self.key_head.parameters()]
            self._ema_pairs = (keys, [*self.backbone.parameters(), *self.head.parameters()])
        ema_update(*self._ema_pairs, m)


def _flush_before_state_dict(module: MoCoV2, prefix: str, keep_vars: bool) -> None:
    module.flush_queue()
