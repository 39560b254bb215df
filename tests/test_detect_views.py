import pytest

from passkit.detect.views import MIN_TILE_SIDE, crops, parse_view


def covered(width, height, boxes):
    grid = [[False] * width for _ in range(height)]
    for x, y, w, h in boxes:
        for row in range(y, min(y + h, height)):
            grid[row][x : x + w] = [True] * len(grid[row][x : x + w])
    return all(all(row) for row in grid)


@pytest.mark.parametrize(
    ("width", "height", "view", "count"), [(640, 480, "full", 1), (640, 480, "tiles2", 4), (1024, 768, "tiles3", 9)]
)
def test_tiles_cover_the_image(width, height, view, count):
    boxes = crops(width, height, view)
    assert len(boxes) == count
    assert covered(width, height, boxes)
    assert all(x + w <= width and y + h <= height for x, y, w, h in boxes)


def test_tiles_overlap_and_never_get_too_small():
    boxes = crops(640, 480, "tiles3")
    assert all(w >= MIN_TILE_SIDE and h >= MIN_TILE_SIDE for _, _, w, h in boxes)
    assert len(boxes) == 9
    (x0, _, w0, _), (x1, _, _, _) = boxes[0], boxes[3]
    assert x1 < x0 + w0  # neighbours overlap, so a person on a seam is whole in one tile


def test_small_or_thin_images():
    assert crops(100, 80, "tiles2") == [(0, 0, 100, 80)]  # too small to tile: the tiled view is the image
    thin = crops(2000, 150, "tiles2")
    assert len(thin) == 2 and all(h == 150 for _, _, _, h in thin)


def test_bad_view_names():
    with pytest.raises(ValueError, match="tilesN"):
        parse_view("tiles")
    with pytest.raises(ValueError):
        parse_view("zoom2")
