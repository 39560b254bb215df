"""The separable Gaussian blur equals torchvision's 2-D one; the recipes' views keep their shapes and dtype."""

import pytest

torch = pytest.importorskip("torch")
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from passkit.ssl.augment import SeparableGaussianBlur, build_augment, gaussian_blur  # noqa: E402


@pytest.mark.parametrize("kernel,sigma", [(3, 0.1), (11, 1.3), (23, 2.0)])
def test_separable_blur_equals_torchvision(kernel, sigma):
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(kernel))
    ours = gaussian_blur(image, kernel, sigma)
    reference = TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])
    assert ours.dtype == torch.uint8 and ours.shape == image.shape
    assert (ours.int() - reference.int()).abs().max() <= 1  # float summation order; both round to uint8
    floats = image.float() / 255
    torch.testing.assert_close(
        gaussian_blur(floats, kernel, sigma), TF.gaussian_blur(floats, [kernel] * 2, [sigma] * 2)
    )


def test_blur_draws_sigma_from_the_torch_generator():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    blur = SeparableGaussianBlur(9, (0.1, 2.0))
    torch.manual_seed(3)
    first = blur(image)
    torch.manual_seed(3)
    assert torch.equal(blur(image), first)
    with pytest.raises(ValueError, match="odd"):
        SeparableGaussianBlur(8)


@pytest.mark.parametrize("recipe,n_views", [("mocov2", 2), ("swav", 8), ("dino", 10)])
def test_recipe_views(recipe, n_views):
    image = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8)
    views = build_augment(recipe, 64, 32)(image)
    assert len(views) == n_views
    assert [v.shape[-1] for v in views] == [64, 64] + [32] * (n_views - 2)
    assert all(v.dtype == torch.float32 for v in views)
