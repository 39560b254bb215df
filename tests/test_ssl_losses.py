"""Losses, Sinkhorn, DINO centre, MoCo queue and schedules on tiny tensors against hand-computed values."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from passkit.ssl.backbones import build_backbone  # noqa: E402
from passkit.ssl.heads import DINOHead  # noqa: E402
from passkit.ssl.losses import DINOLoss, info_nce, sinkhorn, swapped_prediction  # noqa: E402
from passkit.ssl.methods import DINO, MoCoV2, SwAV  # noqa: E402
from passkit.ssl.optim import LARS, clip_per_parameter  # noqa: E402
from passkit.ssl.schedules import cosine_schedule, teacher_temperature_schedule  # noqa: E402

torch.set_num_threads(1)


def test_info_nce_matches_hand_computation():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    key = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    # Sample 1: logits (1, 0, -1) / 0.5; sample 2: (0.8, 1, 0) / 0.5.
    first = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))
    second = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(2) + math.exp(0)))
    assert info_nce(query, key, queue, temperature=0.5).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_swapped_prediction_matches_hand_computation():
    codes = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    scores = torch.tensor([[0.0, 0.0], [0.1, -0.1]])
    p = 1 / (1 + math.exp(-2.0))  # softmax([1, -1]) of the second row at T = 0.1
    expected = (math.log(2) + -(0.25 * math.log(p) + 0.75 * math.log(1 - p))) / 2
    assert swapped_prediction(codes, scores, temperature=0.1).item() == pytest.approx(expected, rel=1e-6)


def test_sinkhorn_codes_are_distributions_and_equipartition_the_prototypes():
    generator = torch.Generator().manual_seed(0)
    scores = torch.nn.functional.normalize(torch.randn(12, 8, generator=generator), dim=1)
    codes = sinkhorn(scores, epsilon=0.05, iterations=3)
    assert codes.shape == (12, 8)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(12))  # each sample: a distribution
    # Marginals over prototypes converge to the uniform B / K = 1.5 as iterations grow.
    converged = sinkhorn(scores, epsilon=0.05, iterations=200)
    torch.testing.assert_close(converged.sum(dim=0), torch.full((8,), 1.5), atol=1e-3, rtol=0)
    three = (codes.sum(dim=0) - 1.5).abs().max()
    raw = (torch.softmax(scores / 0.05, dim=1).sum(dim=0) - 1.5).abs().max()
    assert three < raw


def test_sinkhorn_one_iteration_by_hand():
    scores = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    q = torch.exp((scores - 1) / 0.5).t()  # K x B
    q = q / q.sum()
    q = q / q.sum(dim=1, keepdim=True) / 2
    q = q / q.sum(dim=0, keepdim=True) / 2
    expected = (q * 2).t()
    torch.testing.assert_close(sinkhorn(scores, epsilon=0.5, iterations=1), expected)


def test_dino_loss_and_centre_update_by_hand():
    loss_fn = DINOLoss(out_dim=2, student_temp=1.0, center_momentum=0.9)
    student = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # crop 0, crop 1 (batch 1)
    teacher = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    loss = loss_fn(student, teacher, n_crops=2, teacher_temp=1.0)
    # Pairs (teacher 0 -> student 1) and (teacher 1 -> student 0): cross-entropy of (.5,.5) vs (.75,.25) and back.
    ce_01 = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    ce_10 = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))
    assert loss.item() == pytest.approx((ce_01 + ce_10) / 2, rel=1e-6)
    batch_mean = teacher.mean(dim=0, keepdim=True)
    torch.testing.assert_close(loss_fn.center, 0.1 * batch_mean)
    loss_fn.update_center(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    torch.testing.assert_close(loss_fn.center, 0.9 * 0.1 * batch_mean + 0.1 * torch.tensor([[2.0, 3.0]]))


def test_dino_loss_subtracts_the_centre_and_sharpens():
    loss_fn = DINOLoss(out_dim=2, student_temp=1.0, center_momentum=1.0)  # momentum 1: the centre stays put
    loss_fn.center.copy_(torch.tensor([[1.0, 0.0]]))
    student = torch.zeros(2, 2)
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Centred teacher logits are (0, 0) -> uniform targets whatever the temperature; student uniform: log 2.
    assert loss_fn(student, teacher, 2, teacher_temp=0.04).item() == pytest.approx(math.log(2), rel=1e-6)


def _tiny_backbone():
    return build_backbone("vit_micro", image_size=16)


def test_moco_queue_enqueue_wraps_around():
    torch.manual_seed(0)
    moco = MoCoV2(_tiny_backbone, dim=2, queue_size=5)
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    moco.enqueue(first)
    torch.testing.assert_close(moco.queue[:3], first)
    assert int(moco.queue_ptr) == 3
    second = torch.tensor([[-1.0, 0.0], [0.0, -1.0], [0.8, 0.6]])
    old_row_1 = moco.queue[1].clone()
    moco.enqueue(second)
    torch.testing.assert_close(moco.queue[3:], second[:2])
    torch.testing.assert_close(moco.queue[0], second[2])
    torch.testing.assert_close(moco.queue[1], old_row_1)  # oldest entries replaced first, the rest kept
    assert int(moco.queue_ptr) == 1


def test_moco_forward_enqueues_keys_and_momentum_update():
    torch.manual_seed(0)
    moco = MoCoV2(_tiny_backbone, dim=8, queue_size=16, momentum=0.5)
    moco.schedules = moco.method_schedules(1, 10)
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    queue_before = moco.queue.clone()
    loss, _ = moco(views, 0)
    # The loss's graph reads the queue in place: the keys wait until backward is done and the step completes.
    assert loss.item() > 0 and int(moco.queue_ptr) == 0 and torch.equal(moco.queue, queue_before)
    loss.backward()
    query_param = next(moco.backbone.parameters())
    key_param = next(moco.key_backbone.parameters())
    with torch.no_grad():
        query_param.add_(1.0)
    before = key_param.clone()
    moco.after_step(0)
    assert int(moco.queue_ptr) == 4
    torch.testing.assert_close(moco.queue[:4].norm(dim=1), torch.ones(4))
    torch.testing.assert_close(moco.queue[4:], queue_before[4:])
    torch.testing.assert_close(key_param, 0.5 * before + 0.5 * query_param)


def test_moco_pending_keys_reach_state_dict_and_no_grad_forward_enqueues_at_once():
    torch.manual_seed(0)
    moco = MoCoV2(_tiny_backbone, dim=8, queue_size=16)
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    moco(views, 0)[0].backward()
    state = moco.state_dict()  # a checkpoint taken before after_step still holds this step's keys
    assert int(state["queue_ptr"]) == 4
    with torch.no_grad():
        moco(views, 1)
    assert int(moco.queue_ptr) == 8


def test_swav_queue_fills_then_joins_the_assignment():
    torch.manual_seed(0)
    swav = SwAV(_tiny_backbone, dim=8, hidden_dim=16, n_prototypes=5, queue_length=8, queue_start_epoch=0)
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16), torch.randn(4, 3, 8, 8)]
    swav(views, 0)
    assert not bool(swav.queue_in_use) and torch.all(swav.queue[:, 4:] == 0)
    swav(views, 1)
    assert torch.all(swav.queue[:, -1] != 0)
    _, logs = swav(views, 2)
    assert logs["queue"] == 1.0
    torch.testing.assert_close(swav.head.prototypes.weight.norm(dim=1), torch.ones(5))


def test_swav_prototypes_frozen_for_first_iterations():
    torch.manual_seed(0)
    swav = SwAV(_tiny_backbone, dim=8, hidden_dim=16, n_prototypes=5, freeze_prototypes_iters=2)
    views = [torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)]
    loss, _ = swav(views, 0)
    loss.backward()
    swav.cancel_gradients(1)
    assert swav.head.prototypes.weight.grad is None
    loss, _ = swav(views, 2)
    loss.backward()
    swav.cancel_gradients(2)
    assert swav.head.prototypes.weight.grad is not None


def test_dino_head_last_layer_magnitude_frozen_and_teacher_ema():
    head = DINOHead(8, out_dim=16, hidden_dim=8, bottleneck_dim=4)
    assert not head.last_layer.parametrizations.weight.original0.requires_grad
    torch.manual_seed(0)
    dino = DINO(_tiny_backbone, out_dim=16, hidden_dim=8, bottleneck_dim=4, freeze_last_layer_epochs=1)
    dino.iters_per_epoch = 2
    dino.schedules = dino.method_schedules(2, 2)
    assert dino.schedules["momentum"][0] == pytest.approx(0.996) and dino.schedules["momentum"][-1] < 1
    views = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8)]
    loss, _ = dino(views, 0)
    loss.backward()
    dino.cancel_gradients(1)  # epoch 0: last layer frozen
    assert all(p.grad is None for p in dino.student.head.last_layer.parameters())
    student_param = next(dino.student.parameters())
    teacher_param = next(dino.teacher.parameters())
    with torch.no_grad():
        student_param.add_(1.0)
    before = teacher_param.clone()
    m = float(dino.schedules["momentum"][1])
    dino.after_step(1)
    torch.testing.assert_close(teacher_param, m * before + (1 - m) * student_param)


def test_schedules():
    lr = cosine_schedule(1.0, 0.1, epochs=4, iters_per_epoch=5, warmup_epochs=1, warmup_start=0.0)
    assert len(lr) == 20
    np.testing.assert_allclose(lr[:5], np.linspace(0, 1, 5))
    assert lr[5] == pytest.approx(1.0) and lr[-1] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 14 / 15)))
    assert np.all(np.diff(lr[5:]) < 0)
    temps = teacher_temperature_schedule(0.04, 0.07, warmup_epochs=2, epochs=4, iters_per_epoch=3)
    np.testing.assert_allclose(temps, [0.04] * 3 + [0.07] * 9)


def test_lars_scales_each_parameter_step_by_its_trust_ratio():
    param = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # norm 5
    param.grad = torch.tensor([0.0, 1.0])  # norm 1
    optimizer = LARS([{"params": [param], "weight_decay": 0.0}], lr=1.0, momentum=0.0, trust=0.001)
    optimizer.step()
    torch.testing.assert_close(param.detach(), torch.tensor([3.0, 4.0 - 0.005]))
    assert optimizer.param_groups[0]["weight_decay"] == 0.0


def test_clip_per_parameter():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(2))
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])
    clip_per_parameter([a, b], 1.0)
    assert a.grad.norm().item() == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(b.grad, torch.tensor([0.3, 0.4]))
