# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""Checkpoints of a pretraining run and how it ends: `checkpoints/step-XXXXXX` folders (Accelerate states, each
also a `from_pretrained` folder for non-sharded runs) written under a temporary name and renamed when complete,
resuming from one, the final `model/` folder, and stopping on SIGINT / SIGTERM with a checkpoint."""

from __future__ import annotations

import re
import shutil
import signal
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator
from transformers import BaseImageProcessor

from ...utils.atomic import atomic_folder, replace_folder

CHECKPOINT_NAME = re.compile(r"step-(\d+)")

COMPILED_PREFIX = "_orig_mod."


@dataclass
class TrainingProgress:
    """Where the run is, saved in every checkpoint. `settings` are what a resumed run must share with the original:
    loading a checkpoint whose settings differ is refused."""

    step: int = 0
    epoch: int = 0
    steps_in_epoch: int = 0
    settings: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        differences = [
            f"{name} was {state['settings'].get(name)}, now {value}"
            for name, value in self.settings.items()
            if state["settings"].get(name) != value
        ]
        if differences:
            raise ValueError(
                "The checkpoint comes from a run with other settings (" + "; ".join(differences) + "). Resume with "
                "the original data, batch size, process count, schedule and seed, or start a new run with "
                "--init_from."
            )
        self.step, self.epoch, self.steps_in_epoch = state["step"], state["epoch"], state["steps_in_epoch"]


def checkpoint_step(path: Path) -> int:
    return int(CHECKPOINT_NAME.fullmatch(path.name)[1])


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are not listed)."""
    if not checkpoints_dir.is_dir():
        return []
    found = [path for path in checkpoints_dir.iterdir() if path.is_dir() and CHECKPOINT_NAME.fullmatch(path.name)]
    return sorted(found, key=checkpoint_step)


def save_checkpoint(
    accelerator: Accelerator, model, checkpoints_dir: Path, step: int, save_total_limit: int
) -> Path:
    """`accelerator.save_state` into a temporary folder renamed `step-XXXXXX` once every process has written;
    the oldest checkpoints beyond `save_total_limit` are then removed."""
    destination = checkpoints_dir / f"step-{step:06d}"
    staging = checkpoints_dir / f".{destination.name}.partial"
    if accelerator.is_main_process:
        # Left by saves that were interrupted (of this step or, before a resume from an older one, of any other).
        for leftover in checkpoints_dir.glob(".step-*.partial"):
            shutil.rmtree(leftover)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        # Beside the weights, the config makes a non-sharded checkpoint a from_pretrained folder (e.g. for
        # --init_from).
        accelerator.unwrap_model(model, keep_torch_compile=False).config.save_pretrained(staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_folder(staging, destination)
        # Checkpoints of later steps (left when resuming from an older one) are neither counted nor removed.
        earlier = [path for path in list_checkpoints(checkpoints_dir) if checkpoint_step(path) < step]
        for old in earlier[: max(0, len(earlier) - save_total_limit + 1)]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return destination


def checkpoint_to_resume(resume: str | None, checkpoints_dir: Path) -> Path | None:
    """The checkpoint `--resume` names ("latest": the newest in `checkpoints_dir`), or None for a new run, which
    must not start where another run's checkpoints are."""
    found = list_checkpoints(checkpoints_dir)
    if resume is None:
        if found:
            raise ValueError(
                f"{checkpoints_dir.parent} already holds checkpoints of a run: pass --resume to continue it, or "
                "choose another --output_dir."
            )
        return None
    if resume == "latest":
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoints_dir} to continue from.")
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume: no checkpoint folder at {path}.")
    return path


def save_final_model(
    accelerator: Accelerator, model, image_processor: BaseImageProcessor, destination: Path
) -> Path:
    """The model (`save_pretrained`) and its image processor, written under a temporary name and then renamed."""
    state_dict = accelerator.get_state_dict(model)  # gathers sharded (FSDP, DeepSpeed ZeRO-3) weights
    if accelerator.is_main_process:
        # A compiled model's weights are named after its wrapper (_orig_mod.); the saved model is the plain one.
        state_dict = {name.removeprefix(COMPILED_PREFIX): tensor for name, tensor in state_dict.items()}
        with atomic_folder(destination) as staging:
            accelerator.unwrap_model(model, keep_torch_compile=False).save_pretrained(staging, state_dict=state_dict)
            image_processor.save_pretrained(staging)
    accelerator.wait_for_everyone()
    return destination


class StopRequest:
    """SIGINT / SIGTERM (Ctrl-C, a cluster's pre-emption notice) ask training to stop after the current optimiser
    step, with a checkpoint. A second signal of the same kind acts as it would without this."""

    signals = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous_handlers = {}

    def handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signum, self.previous_handlers[signum])

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self.previous_handlers = {signum: signal.signal(signum, self.handle) for signum in self.signals}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)


def ignore_stop_signals(worker_id: int) -> None:
    """Data workers leave SIGINT / SIGTERM to the training process (see `StopRequest`), which stops them itself:
    a worker killed by them would make the data loader abort training before the last checkpoint."""
    for signum in StopRequest.signals:
        signal.signal(signum, signal.SIG_IGN)
