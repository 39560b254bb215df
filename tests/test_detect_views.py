import pytest

from passkit.detect.views import (
    MIN_TILE_SIDE,
    ZOOM_MIN_SIDE,
    check_view,
    crops,
    is_zoom,
    on_candidate,
    parse_view,
    zoom_candidates,
    zoom_count,
    zoom_window,
)


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
    for bad in ("zoom", "zoom0", "tiles0", "zoom12", "crop2"):
        with pytest.raises(ValueError, match="zoomK"):
            check_view(bad)
    with pytest.raises(ValueError, match="no fixed crops"):
        crops(640, 480, "zoom2")  # a zoom view's windows follow the candidates
    assert is_zoom("zoom4") and zoom_count("zoom4") == 4 and not is_zoom("tiles2")


def test_zoom_window_is_a_centred_square_with_context():
    # A 20 x 30 px person in the middle of a large photo: 3x its long side = 90 < the minimum side.
    x, y, w, h = zoom_window((1000, 500, 1020, 530), 4000, 3000)
    assert (w, h) == (ZOOM_MIN_SIDE, ZOOM_MIN_SIDE)
    assert (x + w / 2, y + h / 2) == (1010, 515)  # centred on the candidate
    x, y, w, h = zoom_window((1000, 500, 1100, 700), 4000, 3000)
    assert (w, h) == (600, 600) and (x, y) == (750, 300)


def test_zoom_window_stays_inside_the_image():
    # At a corner the square is shifted, not cut, so the candidate keeps its context on the inner side.
    assert zoom_window((2, 3, 12, 23), 640, 480) == (0, 0, ZOOM_MIN_SIDE, ZOOM_MIN_SIDE)
    assert zoom_window((630, 470, 640, 480), 640, 480) == (
        640 - ZOOM_MIN_SIDE,
        480 - ZOOM_MIN_SIDE,
        ZOOM_MIN_SIDE,
        ZOOM_MIN_SIDE,
    )
    # Boxes reaching past the border (detectors do that) are clipped first; a square larger than the image is cut.
    assert zoom_window((-20, 100, 300, 460), 400, 300) == (0, 0, 400, 300)
    assert zoom_window((10, 10, 40, 40), 60, 50) == (0, 0, 60, 50)


def test_zoom_candidates_take_every_pass_best_first_and_merge_duplicates():
    noisy = [(0.9, (0, 0, 10, 10)), (0.8, (100, 0, 110, 10)), (0.7, (200, 0, 210, 10))]  # one pass, high scores
    quiet = [(0.06, (300, 300, 310, 330)), (0.05, (0, 0, 10, 11))]  # another: its best is not the noisy one's
    chosen = zoom_candidates([noisy, quiet], 2)
    assert chosen == [(0.9, (0, 0, 10, 10)), (0.06, (300, 300, 310, 330))]
    # Rank 2 of the quiet pass overlaps the noisy pass's best (IoU > 0.5): the same thing, counted once.
    assert [box for _, box in zoom_candidates([noisy, quiet], 5)] == [
        (0, 0, 10, 10),
        (300, 300, 310, 330),
        (100, 0, 110, 10),
        (200, 0, 210, 10),
    ]
    assert zoom_candidates([[(0.019, (0, 0, 5, 5))], [(0.5, (5, 5, 5, 9))]], 3) == []  # below floor / empty box
    assert zoom_candidates([], 3) == []


def test_a_zoomed_box_confirms_a_candidate_only_in_place():
    candidate = (100, 100, 110, 130)
    assert on_candidate((98, 95, 114, 135), candidate)  # a looser box around the same person
    assert not on_candidate((115, 100, 125, 130), candidate)  # a neighbour
    assert not on_candidate((0, 0, 400, 400), candidate)  # a big box whose centre is elsewhere
