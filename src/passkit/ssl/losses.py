"""Losses of the three recipes as pure functions / small modules, testable on tiny tensors.

Under torch.distributed the sums that define a batch-level quantity (Sinkhorn marginals, DINO's centre) are
all-reduced, so N ranks compute exactly what one process would on the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from passkit.ssl.distributed import all_reduce_sum, world_size


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """MoCo contrastive loss: each query's positive is its key, negatives are the queue rows.

    ``query``, ``key``: (N, D) L2-normalised; ``queue``: (K, D) L2-normalised. Cross-entropy with the positive at
    index 0 of the (N, 1 + K) logits divided by ``temperature``.
    """
    positive = (query * key).sum(dim=1, keepdim=True)
    negative = query @ queue.t()
    logits = torch.cat([positive, negative], dim=1) / temperature
    labels = torch.zeros(len(query), dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, labels)


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp equipartition of (B, K) prototype scores into soft codes (B, K) whose rows sum to 1.

    The prototype marginals are all-reduced over ranks, so the assignment equals the one computed on the global
    batch. Scores are cosine similarities (<= 1), shifted by 1 before the exponential for range safety (a
    constant factor that the normalisation removes).
    """
    q = torch.exp((scores.float() - 1.0) / epsilon).t()  # K x B
    n_prototypes = q.shape[0]
    n_samples = q.shape[1] * world_size()
    q /= all_reduce_sum(q.sum().reshape(1))
    for _ in range(iterations):
        q /= all_reduce_sum(q.sum(dim=1, keepdim=True))
        q /= n_prototypes
        q /= q.sum(dim=0, keepdim=True)
        q /= n_samples
    q *= n_samples
    return q.t()


def swapped_prediction(codes: torch.Tensor, scores: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Cross-entropy between codes (B, K) of one view and softmax(scores / T) of another view."""
    return -(codes * F.log_softmax(scores / temperature, dim=1)).sum(dim=1).mean()


def schedule_value(values: torch.Tensor | list[float], index: int) -> float:
    return float(values[min(index, len(values) - 1)])


class DINOLoss(nn.Module):
    """DINO self-distillation: centred, sharpened teacher softmax vs student log-softmax over all cross pairs.

    ``center`` is a buffer (saved in checkpoints) updated with an EMA of the teacher's batch mean after each call.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self, student_out: torch.Tensor, teacher_out: torch.Tensor, n_crops: int, teacher_temp: float
    ) -> torch.Tensor:
        student = (student_out.float() / self.student_temp).chunk(n_crops)
        teacher = F.softmax((teacher_out.float() - self.center) / teacher_temp, dim=-1).detach().chunk(2)
        total = student_out.new_zeros((), dtype=torch.float32)
        pairs = 0
        for t_index, target in enumerate(teacher):
            for s_index, prediction in enumerate(student):
                if s_index == t_index:
                    continue
                total = total + (-target * F.log_softmax(prediction, dim=-1)).sum(dim=-1).mean()
                pairs += 1
        self.update_center(teacher_out)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = all_reduce_sum(teacher_out.float().sum(dim=0, keepdim=True))
        batch_center /= len(teacher_out) * world_size()
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
