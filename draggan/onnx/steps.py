"""The ONNX Runtime backend of ``draggan.drag``: each step run by ONNX Runtime's training API.

``OrtSteps`` is the engine loop's stepper for ``DragConfig(backend='onnxruntime')``. Per
step: an evaluation pass of the exported step gives this latent's features (tracking, done
by the engine outside the graph, runs on them); a training pass with the tracked handles and
those features as the detached side gives the losses and the latent's gradient; after the
callback, ONNX Runtime's Adam updates the latent held in its checkpoint state. The step
that ends the drag runs an evaluation pass instead (losses only), as the PyTorch backend
computes that step's losses without an update. Images come from ``synthesis.onnx``.

So a step costs one more forward to the feature block than the PyTorch backend's (the
tracked handles must be known before the training pass, and a training pass always runs its
backward): the price of keeping tracking outside the graph and the handles exact.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.dragging.config import DragConfig, DragParams
from draggan.dragging.fast import cell_weights
from draggan.dragging.inputs import DragInputs
from draggan.dragging.windows import Box
from draggan.onnx.export import CHECKPOINT, EVAL, OPTIMIZER, SYNTHESIS, TRAINING, open_artifacts
from draggan.onnx.params import ExportParams
from draggan.onnx.requirements import import_module, require_training


def session_options(ort: Any) -> Any:
    """ONNX Runtime session options using torch's thread count (as the PyTorch backend)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings and errors only
    # Without ORT's CPU arena a drag step's peak memory roughly halves (256 px: +0.65 GB
    # instead of +1.2 GB over the sessions); step times differed by less than the noise of
    # the loaded machine they were measured on (+-20 %).
    options.enable_cpu_mem_arena = False
    return options


class OrtSteps:
    """Steps of one drag on exported artifacts (see the module docstring). Not resumable
    (``DragConfig.resumable``): ONNX Runtime does not expose Adam's moments."""

    @classmethod
    @contextmanager
    def open(
        cls,
        G: Any,
        inputs: DragInputs,
        params: DragParams,
        config: DragConfig,
        artifacts: Any,  # directory (exported there when missing or stale), or None
        report: Any = None,  # report(message) when an artifact directory is refused
    ) -> Iterator[OrtSteps]:
        """The stepper on verified artifacts (exported first when needed; into a temporary
        directory, removed afterwards, when ``artifacts`` is None)."""
        require_training()
        spec = ExportParams.for_drag(config, params, int(inputs.handles.shape[0]))
        with tempfile.TemporaryDirectory(prefix="dragpipe-onnx-") as scratch:
            directory = Path(artifacts) if artifacts is not None else Path(scratch) / "onnx"
            manifest = open_artifacts(
                G, directory, spec, lr=config.lr, window=params.window, report=report
            )
            yield cls(G, inputs, params, config, directory, manifest)

    def __init__(
        self,
        G: Any,
        inputs: DragInputs,
        params: DragParams,
        config: DragConfig,
        directory: Path,
        manifest: dict[str, Any],
    ) -> None:
        ort = import_module("onnxruntime")
        api = import_module("onnxruntime.training.api")
        self.manifest = manifest
        self.directory = directory
        self.device = inputs.ws.device
        options = session_options(ort)
        self.state = api.CheckpointState.load_checkpoint(str(directory / CHECKPOINT))
        self.module = api.Module(
            str(directory / TRAINING),
            self.state,
            str(directory / EVAL),
            device="cpu",
            session_options=options,
        )
        self.optimizer = api.Optimizer(str(directory / OPTIMIZER), self.module)
        self.optimizer.set_learning_rate(float(config.lr))
        self._synthesis = ort.InferenceSession(
            str(directory / SYNTHESIS), options, providers=["CPUExecutionProvider"]
        )
        ws0 = inputs.ws.detach().to("cpu", torch.float32).numpy()  # [1, num_ws, w_dim]
        self.layers = config.layers
        self.w_plus = config.w_plus
        head = ws0[:, : config.layers] if config.w_plus else ws0[:, :1]
        self.state.parameters["latent"].data = np.ascontiguousarray(head)
        self.rest = np.ascontiguousarray(ws0[:, config.layers :])  # [1, num_ws - layers, w_dim]
        self.targets = inputs.targets.numpy().astype(np.float32)  # [K, 2]
        self.handles0 = inputs.handles.numpy().astype(np.float32)
        self.lambda_mask = np.asarray(config.lambda_mask, dtype=np.float32)
        self.fixed = self._fixed(inputs, params, config)
        self.feat0: np.ndarray | None = None  # [1, C, h, h] step 0's features
        self.feat_ref: np.ndarray | None = None  # [1, C, h, h] the current latent's

    @staticmethod
    def _fixed(inputs: DragInputs, params: DragParams, config: DragConfig) -> np.ndarray:
        """The mask input: fast [1, 1, h, h] fixed fraction per cell; official [1, 1, R, R]."""
        R, h = params.img_resolution, params.feature_resolution
        side = R if config.mode == "official" else h
        if inputs.fixed is None:
            return np.zeros([1, 1, side, side], dtype=np.float32)
        fixed = inputs.fixed.detach().to("cpu", torch.float32)
        if config.mode == "official":
            return fixed.reshape(1, 1, R, R).numpy()
        return cell_weights(fixed, h).numpy()

    def _latent(self) -> np.ndarray:  # [1, latent_ws, w_dim]
        return np.asarray(self.state.parameters["latent"].data)

    def _ws(self) -> np.ndarray:  # [1, num_ws, w_dim]
        head = self._latent()
        if not self.w_plus:
            head = np.repeat(head, self.layers, axis=1)
        return np.ascontiguousarray(np.concatenate([head, self.rest], axis=1), dtype=np.float32)

    def _run(self, train: bool, handles: np.ndarray) -> list[np.ndarray]:
        """One pass of the exported step: (loss, loss_motion, loss_mask, features)."""
        feat_ref = self.feat_ref
        args = [handles, self.targets, feat_ref, self.feat0, self.fixed, self.lambda_mask]
        if self.rest.shape[1] > 0:
            args.append(self.rest)
        if train:
            self.module.train()
            self.module.lazy_reset_grad()
        else:
            self.module.eval()
        return list(self.module(*[np.ascontiguousarray(a) for a in args]))

    def _render(self) -> torch.Tensor:  # [1, C, R, R]
        (image,) = self._synthesis.run(["image"], {"ws": self._ws()})
        return torch.from_numpy(image).to(self.device)

    def forward(
        self, render: bool, boxes: list[Box] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This latent's features [1, C, h, h] (an evaluation pass) and image when ``render``.
        The exported step computes the whole feature map: ``boxes`` (the windows a fast step
        reads, which the torch backend computes alone) are covered by it."""
        if self.feat_ref is None:  # step 0: nothing known yet; only the features are used
            self.feat_ref = self.feat0 = self._zero_features()
        outputs = self._run(False, self.handles0)
        self.feat_ref = outputs[3]
        image = self._render() if render else None
        return torch.from_numpy(outputs[3]).to(self.device), image

    def _zero_features(self) -> np.ndarray:  # [1, C, h, h] zeros of the feature map's shape
        spec = self.manifest["params"]
        channels = self.manifest["feature_channels"]
        side = spec["feature_resolution"]
        return np.zeros([1, channels, side, side], dtype=np.float32)

    def start(self, feat: torch.Tensor) -> None:
        """Step 0's features become the mask term's reference."""
        self.feat0 = feat.detach().to("cpu").numpy()

    def losses(self, mode: Any, feat: torch.Tensor, update: bool) -> tuple[float, float, float]:
        """(motion, mask, total) at the mode's tracked handles; a training pass (gradients
        for the next ``update``) when ``update``, an evaluation pass otherwise."""
        handles = mode.get_handles().numpy().astype(np.float32)  # [K, 2]
        loss, motion, mask, _ = (np.asarray(v) for v in self._run(update, handles))
        return float(motion.reshape(-1)[0]), float(mask.reshape(-1)[0]), float(loss.reshape(-1)[0])

    def update(self, loss: float) -> None:
        self.optimizer.step()

    def final(self, image: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ws [1, num_ws, w_dim], image [1, C, R, R]) of the final latent."""
        ws = torch.from_numpy(self._ws()).to(self.device)
        return ws, image if image is not None else self._render()
