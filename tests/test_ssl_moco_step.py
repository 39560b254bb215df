"""passkit's optimised MoCo-v2 step (NHWC layout, in-place queue read, deferred enqueue, fused lerp EMA, the
trainer's optimiser) against a straightforward MoCo-v2 written out here: same losses, gradients, queue and key
encoder, step after step.

Both run in float64: at this test's size (batch 8, BatchNorm over 8 values in the last stage) float32 rounding
differences between NCHW and NHWC kernels grow chaotically over a few SGD steps (4 % apart after 4 steps on one
thread), which would hide what the test is about -- the step's maths."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from passkit.ssl.backbones import build_backbone, memory_format_for
from passkit.ssl.methods import MoCoV2
from passkit.ssl.optim import build_optimizer

BATCH, SIZE, DIM, QUEUE = 8, 16, 16, 24  # the queue wraps around on the fourth step
LR, WD, SGD_MOMENTUM, EMA, TEMPERATURE = 0.05, 1e-4, 0.9, 0.9, 0.2


def assert_float_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal up to float64 rounding, relative in norm; a wrong gradient, a missed or early enqueue or a wrong
    momentum is off by O(1e-3) or more."""
    assert actual.shape == expected.shape, what
    if not expected.is_floating_point():
        assert torch.equal(actual, expected), what
        return
    error = (actual - expected).norm().item()
    assert error <= 1e-9 * expected.norm().item() + 1e-12, f"{what}: off by {error:.3g}"


class ReferenceMoCo:
    """MoCo-v2 as the paper's pseudo-code reads: NCHW, a copy of the queue per step, slice enqueue, loop EMA/SGD."""

    def __init__(self, query: torch.nn.Module, key: torch.nn.Module, queue: torch.Tensor) -> None:
        self.query, self.key = query, key
        self.queue = queue.clone()
        self.ptr = 0
        self.velocity: dict[int, torch.Tensor] = {}

    def step(self, images_q: torch.Tensor, images_k: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        q = F.normalize(self.query(images_q), dim=1)
        with torch.no_grad():
            k = F.normalize(self.key(images_k), dim=1)
        negatives = self.queue.clone()
        logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ negatives.t()], dim=1) / TEMPERATURE
        loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))
        loss.backward()
        grads = [p.grad.clone() for p in self.query.parameters()]
        with torch.no_grad():
            for index, param in enumerate(self.query.parameters()):
                update = param.grad + WD * param
                velocity = self.velocity.get(index)
                velocity = update if velocity is None else SGD_MOMENTUM * velocity + update
                self.velocity[index] = velocity
                param -= LR * velocity
                param.grad = None
            start = self.ptr
            self.queue[start : start + len(k)] = k
            self.ptr = (start + len(k)) % len(self.queue)
            for key_param, query_param in zip(self.key.parameters(), self.query.parameters(), strict=True):
                key_param.mul_(EMA).add_(query_param, alpha=1 - EMA)
        return loss.detach(), grads


def test_optimised_moco_step_equals_reference_step():
    torch.manual_seed(0)
    arch = "resnet_tiny"
    moco = MoCoV2(lambda: build_backbone(arch, SIZE), dim=DIM, queue_size=QUEUE, momentum=EMA, temperature=TEMPERATURE)
    moco = moco.double()
    reference = ReferenceMoCo(
        torch.nn.Sequential(copy.deepcopy(moco.backbone), copy.deepcopy(moco.head)),
        torch.nn.Sequential(copy.deepcopy(moco.key_backbone), copy.deepcopy(moco.key_head)),
        moco.queue,
    )
    # The trainer's path: NHWC model and inputs, its optimiser, the method's hooks.
    memory_format = memory_format_for(arch)
    assert memory_format == torch.channels_last
    moco = moco.to(memory_format=memory_format)
    moco.schedules = moco.method_schedules(1, 10)
    optimizer = build_optimizer("sgd", moco.param_groups(WD), LR, SGD_MOMENTUM)
    conv = moco.backbone.body.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)

    generator = torch.Generator().manual_seed(1)
    for step in range(5):
        images_q, images_k = (
            torch.randn(BATCH, 3, SIZE, SIZE, generator=generator, dtype=torch.float64) for _ in range(2)
        )
        expected_loss, expected_grads = reference.step(images_q, images_k)

        views = [v.to(memory_format=memory_format) for v in (images_q, images_k)]
        loss, _ = moco(views, step)
        loss.backward()
        grads = [p.grad.clone() for p in [*moco.backbone.parameters(), *moco.head.parameters()]]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        moco.after_step(step)

        assert_float_close(loss.detach(), expected_loss, f"step {step} loss")
        assert len(grads) == len(expected_grads)
        for index, (grad, expected) in enumerate(zip(grads, expected_grads, strict=True)):
            assert_float_close(grad, expected, f"step {step} gradient {index}")
        assert_float_close(moco.queue, reference.queue, f"step {step} queue")
        assert int(moco.queue_ptr) == reference.ptr
    key_state = {**moco.key_backbone.state_dict(), **moco.key_head.state_dict()}
    reference_state = reference.key.state_dict()
    assert len(key_state) == len(reference_state)
    for (name, value), expected in zip(key_state.items(), reference_state.values(), strict=True):
        assert_float_close(value, expected, f"key encoder {name}")
