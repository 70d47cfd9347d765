"""Make the small demo generator used by ``dragpipe demo`` (not a face model).

What it is: a StyleGAN2 generator (``draggan.Generator``, NVIDIA's architecture and names)
at 128 x 128 px, channel_base 4096, channel_max 64 (64 channels up to b64, 32 at b128),
z_dim = w_dim = 64, 4 mapping layers, 'skip' architecture, conv_clamp 256, float32;
about 0.45 M parameters (about 1.8 MB as safetensors). It has seen ONE face: the bundled
public-domain photo ``examples/photos/grace_hopper.jpg`` (US Navy), FFHQ-aligned at 128 px
with ``pipeline.alignment`` (dlib landmarks). It is trained, seeded, with a plain regression
loss (L1 on the image plus L1 on its 2x-downsampled version; Adam betas (0.9, 0.99), batch
2, lr 1e-2 with a cosine ramp-down to 1e-3 over the last 30% of the steps or of the time
budget, whichever ends first; noise_mode 'const') so that every z gives
that face under a small geometric and colour variation that is a fixed smooth function of
z: with p = tanh(z[:6]), rotation 5 deg * p0, scale 1 + 0.05 p1, shift (0.04 p2, 0.04 p3)
of the half-width (about 2.5 px), brightness 1 + 0.1 p4, warm/cool tint 0.06 p5. So its W
space encodes pose and colour of that one face: PTI reproduces the photo, drags move
something, and the demo runs in minutes on a CPU. It knows nothing of other faces; real
edits need a real checkpoint (e.g. NVIDIA's stylegan2-ffhq-512x512.pkl).

Afterwards ``mapping.w_avg`` is set to the mean w of 4096 seeded z (truncation works),
and the result is written with ``draggan.native_format.save_generator`` to
``examples/demo/generator.safetensors`` + ``generator.json``, plus a preview
``examples/demo/generator_preview.png`` (target, then 7 samples).

The committed ``generator.safetensors`` was made in two runs on the shared 2-core CPU
(step times 0.1-9 s as the load varied):
``--steps 400`` (826 s, held-out loss 0.51), then
``--init generator.safetensors --seed 1 --steps 2000 --max-minutes 17``, which stopped at
step 794 (1024 s, held-out loss 0.40): about 31 minutes of training in all.

Usage (from the repository root, after ``pip install -e .``)::

    python examples/demo/make_demo_generator.py [--steps 400] [--max-minutes M] [--seed 0]

It prints the step time, the loss and the total time. A step (batch 2, CPU) takes about
2 s on an idle 2-core machine, many times that on a shared one; ``--max-minutes`` bounds
the wall time (the result then depends on the machine's speed).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from draggan import Generator, GeneratorConfig, load_generator
from draggan.native_format import save_generator
from pipeline.alignment import AlignConfig, align_face, find_faces, select_faces
from pipeline.photo import load_photo

HERE = Path(__file__).resolve().parent
PHOTO = HERE.parent / "photos" / "grace_hopper.jpg"
RESOLUTION = 128

CONFIG = GeneratorConfig(
    img_resolution=RESOLUTION,
    z_dim=64,
    w_dim=64,
    mapping_layers=4,
    channel_base=4096,
    channel_max=64,
    conv_clamp=256,
    source="examples/demo/make_demo_generator.py (demo, one face; not a face model)",
)


def aligned_face() -> torch.Tensor:  # -> [1, 3, 128, 128] in [-1, 1]
    """The bundled photo's face, FFHQ-aligned at 128 px by dragpipe's own align code."""
    photo = load_photo(PHOTO)
    face = select_faces(find_faces(photo), "largest")[0]
    image, _ = align_face(photo, face.landmarks, AlignConfig(output_size=RESOLUTION))
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def variation(target: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``target`` [1, 3, H, W] warped and tinted by the smooth function of z [N, z_dim]."""
    p = torch.tanh(z[:, :6])
    angle = math.radians(5.0) * p[:, 0]
    scale = 1 + 0.05 * p[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, 0.04 * p[:, 2]], dim=1),
            torch.stack([sin, cos, 0.04 * p[:, 3]], dim=1),
        ],
        dim=1,
    )  # [N, 2, 3]
    n = z.shape[0]
    grid = F.affine_grid(theta, [n, 3, *target.shape[2:]], align_corners=False)
    warped = F.grid_sample(
        target.expand(n, -1, -1, -1),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    rgb = (warped + 1) / 2 * (1 + 0.1 * p[:, 4]).view(n, 1, 1, 1)
    tint = torch.stack([p[:, 5], torch.zeros_like(p[:, 5]), -p[:, 5]], dim=1) * 0.06
    rgb = rgb + tint.view(n, 3, 1, 1)
    return (rgb.clamp(0, 1) * 2 - 1).contiguous()


def loss_fn(image: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    coarse = F.avg_pool2d(image, 2), F.avg_pool2d(want, 2)
    return (image - want).abs().mean() + (coarse[0] - coarse[1]).abs().mean()


def to_png(images: torch.Tensor, path: Path) -> None:  # images: [N, 3, H, W] in [-1, 1]
    row = torch.cat(list(images.detach().clamp(-1, 1)), dim=2)  # [3, H, N * W]
    array = ((row.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    Image.fromarray(array).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=float("inf"),
        help="stop (and ramp the lr down) by this wall time; the result then depends on speed",
    )
    parser.add_argument("--out", type=Path, default=HERE / "generator.safetensors")
    parser.add_argument(
        "--init", type=Path, default=None, help="continue from a generator this script wrote"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    target = aligned_face()
    if args.init is None:
        G = Generator(CONFIG).train()
    else:  # continue training an earlier result of this script
        G = load_generator(args.init).train().requires_grad_(True)
        if G.config != CONFIG:
            raise SystemExit(f"{args.init} was not made by this script (different config)")
    opt = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.9, 0.99))
    data = torch.Generator().manual_seed(args.seed + 1)
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        elapsed = time.perf_counter() - start
        progress = max(step / args.steps, elapsed / (60 * args.max_minutes))
        if progress > 1:
            print(f"time budget of {args.max_minutes:g} min reached at step {step}", flush=True)
            break
        ramp = min(1.0, (1 - progress) / 0.3)  # cosine ramp-down over the last 30%
        for group in opt.param_groups:
            group["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 - math.cos(math.pi * ramp)))
        z = torch.randn(args.batch, CONFIG.z_dim, generator=data)
        loss = loss_fn(G(z, noise_mode="const"), variation(target, z))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 1 or step % 25 == 0 or step == args.steps:
            print(
                f"step {step:4d}/{args.steps}  loss {loss.item():.4f}  "
                f"{time.perf_counter() - t0:.2f} s/step  {time.perf_counter() - start:.0f} s",
                flush=True,
            )
    G.eval().requires_grad_(False)
    with torch.no_grad():
        zs = torch.randn(4096, CONFIG.z_dim, generator=torch.Generator().manual_seed(123))
        G.mapping.w_avg.copy_(G.mapping(zs).mean(dim=(0, 1)))
        z = torch.randn(7, CONFIG.z_dim, generator=torch.Generator().manual_seed(7))
        samples = G(z)
        error = loss_fn(samples, variation(target, z)).item()
    weights, descriptor = save_generator(G, args.out)
    to_png(torch.cat([target, samples]), args.out.with_name("generator_preview.png"))
    print(
        f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {descriptor}; "
        f"held-out loss {error:.4f}; {sum(p.numel() for p in G.parameters()):,} parameters; "
        f"total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
