"""SwAV (Caron et al. 2020): online clustering with swapped predictions over multi-crop views.

Official recipe: 3,000 prototypes, 128-d projection (2048 hidden), Sinkhorn-Knopp eps 0.05 with 3 iterations and
marginals summed over all ranks, temperature 0.1, codes computed on the two global crops only, a queue of past
embeddings for small batches (starting at a given epoch), prototypes normalised every step and frozen for the
first iterations, LARS (trust 0.001, clip off), lr 4.8 per 4096 with warm-up and cosine, wd 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from passkit.ssl.backbones import Backbone
from passkit.ssl.distributed import world_size
from passkit.ssl.heads import SwAVHead
from passkit.ssl.losses import sinkhorn, swapped_prediction
from passkit.ssl.methods.base import SSLMethod, forward_multicrop

CROPS_FOR_ASSIGN = (0, 1)


class SwAV(SSLMethod):
    rank_owned_buffers = ("queue", "queue_in_use")

    def __init__(
        self,
        make_backbone: Callable[[], Backbone],
        dim: int = 128,
        hidden_dim: int = 2048,
        n_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_length: int = 0,
        queue_start_epoch: int = 15,
        freeze_prototypes_iters: int = 313,
    ) -> None:
        super().__init__()
        self.backbone = make_backbone()
        self.head = SwAVHead(self.backbone.dim, dim, hidden_dim, n_prototypes)
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.queue_start_epoch = queue_start_epoch
        self.freeze_prototypes_iters = freeze_prototypes_iters
        # The queue is per rank (length / world size rows each), as in the official code.
        per_rank = queue_length // max(world_size(), 1)
        self.register_buffer("queue", torch.zeros(len(CROPS_FOR_ASSIGN), per_rank, dim))
        self.register_buffer("queue_in_use", torch.zeros((), dtype=torch.bool))

    def forward(self, views: list[torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        self.head.normalize_prototypes()
        batch = len(views[0])
        embedding, scores = self.head(forward_multicrop(self.backbone, views))
        embedding = embedding.detach()
        use_queue = len(self.queue[0]) > 0 and self.epoch_of(step) >= self.queue_start_epoch
        n_views = len(views)
        loss = scores.new_zeros((), dtype=torch.float32)
        for slot, crop in enumerate(CROPS_FOR_ASSIGN):
            with torch.no_grad():
                out = scores[batch * crop : batch * (crop + 1)].detach()
                if use_queue:
                    if bool(self.queue_in_use) or not torch.all(self.queue[slot, -1] == 0):
                        self.queue_in_use.fill_(True)
                        out = torch.cat([self.queue[slot] @ self.head.prototypes.weight.t(), out])
                    self.queue[slot, batch:] = self.queue[slot, :-batch].clone()
                    self.queue[slot, :batch] = embedding[crop * batch : (crop + 1) * batch]
                codes = sinkhorn(out, self.epsilon, self.sinkhorn_iterations)[-batch:]
            subloss = scores.new_zeros((), dtype=torch.float32)
            for view in range(n_views):
                if view != crop:
                    subloss = subloss + swapped_prediction(
                        codes, scores[batch * view : batch * (view + 1)].float(), self.temperature
                    )
            loss = loss + subloss / (n_views - 1)
        return loss / len(CROPS_FOR_ASSIGN), {"queue": float(bool(self.queue_in_use))}

    def cancel_gradients(self, step: int) -> None:
        if step < self.freeze_prototypes_iters:
            for param in self.head.prototypes.parameters():
                param.grad = None
