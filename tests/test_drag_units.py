"""Drag engine building blocks on synthetic feature maps: sampling, tracking, motion and mask
losses, for both modes."""

from __future__ import annotations

import math

import pytest
import torch

from draggan.dragging import fast, official, windows
from draggan.dragging.config import DragConfig
from draggan.dragging.sampling import sample_features
from draggan.dragging.tracking import track_handles

R = 64  # image side
H = 16  # feature map side: one feature cell = 4 image px
C = 24  # channels


def bump_centers(seed: int, count: int = C) -> torch.Tensor:  # [count, 2] (x, y) image px
    g = torch.Generator().manual_seed(seed)
    return 8 + 48 * torch.rand(count, 2, generator=g, dtype=torch.float64)


def bump_features(
    centers: torch.Tensor,  # [C, 2] (x, y)
    shift: torch.Tensor,  # [2] (x, y) content displacement in image px (may need grad)
    size: int = H,
    sigma: float = 7.0,
) -> torch.Tensor:  # [1, C, size, size] float32
    """Channel c = Gaussian bump centred at centers[c] + shift, sampled at the cell centres of
    a size x size map covering the R x R image."""
    pos = (torch.arange(size, dtype=torch.float64) + 0.5) * (R / size) - 0.5  # image px
    cx = (centers[:, 0] + shift[0]).reshape(-1, 1, 1)
    cy = (centers[:, 1] + shift[1]).reshape(-1, 1, 1)
    d2 = (pos.reshape(1, 1, -1) - cx) ** 2 + (pos.reshape(1, -1, 1) - cy) ** 2
    return torch.exp(-d2 / (2 * sigma**2)).unsqueeze(0).float()


def test_sampling_matches_official_upsampled_map_at_integer_pixels():
    feat = torch.randn(1, 5, H, H, generator=torch.Generator().manual_seed(0))
    up = official.upsample_features(feat, R)  # [1, 5, R, R]
    ys, xs = torch.meshgrid(torch.arange(R), torch.arange(R), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).double()
    sampled = sample_features(feat, pixels, R)  # [5, R * R]
    torch.testing.assert_close(sampled, up[0].reshape(5, -1), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "shift",
    [(2.0, -3.0), (-1.0, 2.0), (5.0, 4.0)],  # half, quarter and 1.25 feature cells
)
def test_tracking_recovers_sub_feature_shift_both_trackers(shift):
    centers = bump_centers(1)
    feat0 = bump_features(centers, torch.zeros(2, dtype=torch.float64))
    feat1 = bump_features(centers, torch.tensor(shift, dtype=torch.float64))
    handles = torch.tensor([[30.0, 28.0], [20.0, 40.0]], dtype=torch.float64)
    expected = handles + torch.tensor(shift, dtype=torch.float64)
    refs = sample_features(feat0, handles, R).T  # [K, C]

    tracked = track_handles(feat1, refs, handles, window=6, resolution=R)
    torch.testing.assert_close(tracked, expected, atol=0, rtol=0)

    up0, up1 = official.upsample_features(feat0, R), official.upsample_features(feat1, R)
    points = [[int(y), int(x)] for x, y in handles.tolist()]
    refs_up = torch.stack([up0[0, :, r, c] for r, c in points])
    rows_cols = official.track_points(up1, refs_up, points, window=6)
    assert [[c, r] for r, c in rows_cols] == expected.tolist()


def test_subpixel_tracking_recovers_fractional_shift():
    centers = bump_centers(2)
    shift = torch.tensor([2.5, -1.25], dtype=torch.float64)
    feat0 = bump_features(centers, torch.zeros(2, dtype=torch.float64))
    feat1 = bump_features(centers, shift)
    handles = torch.tensor([[31.0, 33.0]], dtype=torch.float64)
    refs = sample_features(feat0, handles, R).T
    coarse = track_handles(feat1, refs, handles, window=6, resolution=R)
    fine = track_handles(feat1, refs, handles, window=6, resolution=R, subpixel=True)
    coarse_err = float((coarse - handles - shift).norm())
    fine_err = float((fine - handles - shift).norm())
    assert coarse_err <= math.hypot(0.5, 0.25) + 1e-9
    assert fine_err <= 0.3
    assert fine_err < coarse_err


def test_tracking_window_is_clipped_to_the_image():
    centers = bump_centers(3)
    feat = bump_features(centers, torch.zeros(2, dtype=torch.float64))
    # The window around (0, 60) crosses the left and bottom edges. (Pixels 62 and 63 read the
    # same border-clamped feature, so a handle on the last row would be ambiguous.)
    handles = torch.tensor([[0.0, 60.0]], dtype=torch.float64)
    refs = sample_features(feat, handles, R).T
    tracked = track_handles(feat, refs, handles, window=12, resolution=R)
    assert tracked.tolist() == [[0.0, 60.0]]
    up = official.upsample_features(feat, R)
    assert official.track_points(up, up[0, :, 60, 0].reshape(1, -1), [[60, 0]], 12) == [[60, 0]]


def _motion_grad(mode: str, direction: tuple[float, float]) -> torch.Tensor:
    """d(motion loss)/d(shift) for a handle dragged 8 px along ``direction``."""
    centers = bump_centers(4)
    shift = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    feat = bump_features(centers, shift)
    handle = torch.tensor([[30.0, 30.0]], dtype=torch.float64)
    target = handle + 8 * torch.tensor([direction], dtype=torch.float64)
    if mode == "fast":
        loss = fast.motion_loss(feat, handle, target, fast.disc_offsets(3.0), R)
    else:
        up = official.upsample_features(feat, R)
        points = [[30, 30]]
        targets = [[float(target[0, 1]), float(target[0, 0])]]
        loss = official.motion_loss(up, points, targets, 3, official.skewed_grid(R, up.device))
    loss.backward()
    return shift.grad


@pytest.mark.parametrize("mode", ["fast", "official"])
@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.0, -1.0), (-0.6, 0.8)])
def test_motion_loss_gradient_moves_content_along_the_drag(mode, direction):
    grad = _motion_grad(mode, direction)
    descent = -grad / grad.norm()
    cosine = float(descent @ torch.tensor(direction, dtype=torch.float64))
    assert cosine > 0.9, f"descent direction {descent.tolist()} vs drag {direction}"


def _motion_loss_grad(mode: str, step: tuple[float, float]) -> tuple[torch.Tensor, set, set]:
    """|d(motion loss)/d(feature map)| summed over channels ([S, S], S = 32 image px, the map
    at image resolution in both modes), the disc pixels Q, and the bilinear neighbours A of
    the points q + d (d: unit drag direction, ``step`` = (dx, dy))."""
    size, (col, row) = 32, (15, 12)
    feat = torch.randn(1, 4, size, size, generator=torch.Generator().manual_seed(7))
    feat.requires_grad_(True)
    direction = torch.tensor(step, dtype=torch.float64)
    target = torch.tensor([col, row], dtype=torch.float64) + 6 * direction  # (x, y)
    if mode == "fast":
        offsets = fast.disc_offsets(2.5)
        loss = fast.motion_loss(
            feat, torch.tensor([[col, row]]).double(), target[None], offsets, size
        )
        disc = {(row + int(dy), col + int(dx)) for dx, dy in offsets.tolist()}
    else:
        grid = official.skewed_grid(size, feat.device)
        loss = official.motion_loss(feat, [[row, col]], [target.tolist()[::-1]], 2, grid)
        rows, cols = grid
        inside = torch.where(((rows - row) ** 2 + (cols - col) ** 2) ** 0.5 < 2)
        disc = set(zip(inside[0].tolist(), inside[1].tolist(), strict=True))
    loss.backward()
    ahead = set()
    for r, c in disc:
        y, x = r + float(direction[1]), c + float(direction[0])
        for yy in {math.floor(y), math.ceil(y)}:
            for xx in {math.floor(x), math.ceil(x)}:
                if (1 - abs(y - yy)) * (1 - abs(x - xx)) > 1e-3:
                    ahead.add((yy, xx))
    return feat.grad[0].abs().sum(dim=0), disc, ahead


@pytest.mark.parametrize("mode", ["fast", "official"])
@pytest.mark.parametrize("step", [(1.0, 0.0), (0.0, -1.0), (0.6, 0.8)])
def test_motion_loss_gradient_lands_one_step_ahead(mode, step):
    """Official loss since XingangPan/DragGAN d0422b1: l1(sg(F(q)), F(q + d)). The gradient
    reaches the bilinear neighbours of q + d only; the leading edge of the disc (ahead of
    it, outside Q) gets gradient and the trailing edge (q's own pixels that no q + d
    touches) gets none. The superseded l1(F(q), sg(F(q - d))) does the opposite."""
    grad, disc, ahead = _motion_loss_grad(mode, step)
    scale = float(grad.max())
    assert scale > 0
    touched = {tuple(p) for p in (grad > 1e-5 * scale).nonzero().tolist()}
    assert touched <= ahead, f"gradient outside the neighbours of q + d: {touched - ahead}"
    leading = ahead - disc
    assert leading and all(float(grad[p]) > 1e-3 * scale for p in leading)
    trailing = disc - ahead
    assert all(float(grad[p]) <= 1e-5 * scale for p in trailing)
    if step[0] * step[1] == 0:  # axis-aligned: q + d is a pixel, so the trailing edge exists
        assert trailing


def test_motion_loss_ignores_points_within_one_pixel():
    feat = bump_features(bump_centers(5), torch.zeros(2, dtype=torch.float64))
    handle = torch.tensor([[30.0, 30.0]], dtype=torch.float64)
    near = handle + torch.tensor([[0.6, 0.6]], dtype=torch.float64)
    assert fast.motion_loss(feat, handle, near, fast.disc_offsets(3.0), R) is None
    up = official.upsample_features(feat, R)
    grid = official.skewed_grid(R, up.device)
    assert official.motion_loss(up, [[30, 30]], [[31.0, 30.0]], 3, grid) is None
    assert official.motion_loss(up, [[30, 30]], [[32.0, 30.0]], 3, grid) is not None


def test_disc_geometry_fast_exact_official_skewed():
    offsets = fast.disc_offsets(3.0)
    assert len(offsets) == 25  # integer points with x^2 + y^2 < 9: the 5 x 5 square
    assert bool((offsets.norm(dim=1) < 3).all())
    rows, cols = official.skewed_grid(R, torch.device("cpu"))
    radius = ((rows - 60) ** 2 + (cols - 60) ** 2) ** 0.5
    disc_rows, disc_cols = torch.where(radius < 3)
    # linspace(0, R, R) stretches coordinates by R / (R - 1): near the far corner the
    # official disc is shifted by about one pixel toward the origin.
    assert float(disc_rows.double().mean()) < 60 - 0.5
    assert float(disc_cols.double().mean()) < 60 - 0.5


def _two_objects(g: torch.Tensor, a: torch.Tensor, size: int) -> torch.Tensor:
    """Object A (channels 0-11, near x=20) moves with g + a; object B (12-23, near x=46)
    with g only: a shared latent direction and one that only moves A."""
    gen = torch.Generator().manual_seed(6)
    centers_a = torch.tensor([20.0, 32.0], dtype=torch.float64) + 3 * torch.randn(
        12, 2, generator=gen, dtype=torch.float64
    )
    centers_b = torch.tensor([46.0, 32.0], dtype=torch.float64) + 3 * torch.randn(
        12, 2, generator=gen, dtype=torch.float64
    )
    feat_a = bump_features(centers_a, g + a, size=size, sigma=4.0)
    feat_b = bump_features(centers_b, g, size=size, sigma=4.0)
    return torch.cat([feat_a, feat_b], dim=1)


def _drag_two_objects(mode: str, use_mask: bool) -> tuple[float, float]:
    """Mean feature change (fixed region, movable region) after dragging object A."""
    g = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    a = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([g, a], lr=0.1)
    movable = torch.zeros(R, R)
    movable[:, :33] = 1  # the left half may move
    fixed = 1 - movable
    lam = DragConfig().lambda_mask
    size = H if mode == "fast" else R
    weights = fast.cell_weights(fixed, H)
    handle = torch.tensor([[20.0, 32.0]], dtype=torch.float64)
    target = torch.tensor([[26.0, 32.0]], dtype=torch.float64)
    feat0 = _two_objects(g.detach(), a.detach(), H)
    for _ in range(15):
        feat = _two_objects(g, a, H)
        if mode == "fast":
            loss = fast.motion_loss(feat, handle, target, fast.disc_offsets(3.0), R)
            if use_mask:
                loss = loss + lam * fast.mask_loss(feat, feat0, weights)
        else:
            up, up0 = official.upsample_features(feat, R), official.upsample_features(feat0, R)
            grid = official.skewed_grid(R, up.device)
            loss = official.motion_loss(up, [[32, 20]], [[32.0, 26.0]], 3, grid)
            if use_mask:
                loss = loss + lam * official.mask_loss(up, up0, fixed)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    change = (_two_objects(g, a, size) - _two_objects(torch.zeros(2), torch.zeros(2), size)).abs()
    change = change.detach().sum(dim=1)[0]  # [size, size]
    region = torch.nn.functional.adaptive_avg_pool2d(fixed[None, None], size)[0, 0]
    outside = float((change * region).sum() / region.sum())
    inside = float((change * (1 - region)).sum() / (1 - region).sum())
    return outside, inside


@pytest.mark.parametrize("mode", ["fast", "official"])
def test_mask_loss_keeps_the_fixed_region(mode):
    outside, inside = _drag_two_objects(mode, use_mask=True)
    assert inside > 0.05  # object A did move
    assert outside < 0.15 * inside
    free_outside, free_inside = _drag_two_objects(mode, use_mask=False)
    assert free_outside > 0.5 * free_inside  # without the mask, B moves along with A


def test_feature_windows_cover_every_cell_a_step_samples():
    """Every pixel within reach of a handle (clipped to the image) is sampled from cells
    floor(u) and floor(u) + 1, u = (x + 0.5) h / R - 0.5: all inside the handle's box."""
    R, h = 512, 128
    handles = torch.tensor([[3.2, 500.0], [256.0, 255.6], [511.0, 0.4]], dtype=torch.float64)
    reach = windows.reach(12, 3.0)
    boxes = windows.feature_windows(handles, reach, R, h)
    for (x, y), (top, left, bottom, right) in zip(handles.tolist(), boxes, strict=True):
        for center, low, high in ((x, left, right), (y, top, bottom)):
            pixels = torch.arange(round(center) - reach, round(center) + reach + 1).clamp(0, R - 1)
            u = (pixels.double() + 0.5) * h / R - 0.5
            cells = torch.cat([u.floor(), u.floor() + 1]).clamp(0, h - 1)
            assert low <= int(cells.min()) and int(cells.max()) < high
            assert high - low <= (2 * reach + 1) * h // R + 3  # and not much more
    crowded = torch.rand(80, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert windows.feature_windows(crowded * R, reach, R, h) is None  # most of the map: whole
