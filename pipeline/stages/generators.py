"""The run's generators: the base checkpoint (loaded once per process) and tuned copies.

The base checkpoint's identity in stage keys is the SHA-256 of its file (cached in the store
by path, size and mtime), never its path. A tuned generator is rebuilt from its inversion
result (base + stored delta) and kept in memory for the other edits of the same face.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from draggan import Generator
from draggan.errors import CheckpointError
from pipeline.errors import PipelineError, UsageError
from pipeline.stages.tuned import load_tuned
from pipeline.store import Store


def checkpoint_digest(store: Store, path: Path) -> str:
    """SHA-256 of the checkpoint's bytes (for dragpipe's NAME.json + NAME.safetensors pair:
    of the .safetensors file, which holds the weights and the config)."""
    path = Path(path)
    if path.suffix == ".json" and path.with_suffix(".safetensors").is_file():
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise PipelineError(
            f"generator checkpoint {path} not found: set 'generator:' in the spec to a "
            "StyleGAN2 .pkl or a dragpipe .safetensors file"
        )
    return store.file_digest(path)


class Generators:
    """The spec's generator checkpoint on ``device``: its digest, the base network (loaded
    on first use) and the tuned copy of the inversion last asked for. ``on_warning`` hears
    of an autotune cache that cannot be used (the display's warning line)."""

    def __init__(
        self,
        store: Store,
        path: Path,
        device: torch.device,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.path = Path(path)
        self.device = device
        self.on_warning = on_warning
        self._digest: str | None = None
        self._base: Generator | None = None
        self._tuned: dict[str, Generator] = {}

    @property
    def digest(self) -> str:
        """SHA-256 of the checkpoint file (its identity in stage keys)."""
        if self._digest is None:
            self._digest = checkpoint_digest(self.store, self.path)
        return self._digest

    def base(self) -> Generator:
        """The checkpoint's generator (eval mode, no gradients on its weights); a checkpoint
        damaged past the header the spec check reads is a ``UsageError`` (exit 2)."""
        if self._base is None:
            from draggan import load_generator
            from draggan.autotune import Autotuner

            try:
                G = load_generator(self.path, device=str(self.device))
            except CheckpointError as exc:  # the spec's file is bad: an input problem, exit 2
                raise UsageError(f"generator: {exc}") from None
            G.eval().requires_grad_(False)
            # The layers' implementations are measured once per machine into the user's cache
            # folder (DRAGPIPE_AUTOTUNE overrides); a cache file that cannot be used is said.
            # Tuned copies share this tuner (Autotuner.__deepcopy__).
            G.synthesis.autotuner = Autotuner.from_environment(on_warning=self.on_warning)
            self._base = G
        return self._base

    def tuned(self, key: str, delta: Path) -> Generator:
        """The tuned generator of inversion ``key`` from its stored ``delta`` (kept in memory
        until another inversion's is asked for: one face at a time, memory stays bounded)."""
        if key not in self._tuned:
            G = load_tuned(delta, self.base(), self.digest)
            G.eval().requires_grad_(False)
            self._tuned.clear()
            self._tuned[key] = G
        return self._tuned[key]

    def resolution(self) -> int:
        """The checkpoint's output resolution, remembered in the store by the file's digest.

        ``status`` needs it for the alignment key (the crop size); loading a large checkpoint
        only to learn it is done once per checkpoint.
        """
        info = self.store.generator_info(self.digest)
        try:
            return int(info["img_resolution"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            pass
        G = self.base()
        facts = {"img_resolution": G.img_resolution, "num_ws": G.num_ws, "w_dim": G.w_dim}
        self.store.remember_generator(self.digest, facts)
        return int(G.img_resolution)
