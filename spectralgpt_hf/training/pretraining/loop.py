# Copyright 2026 The spectralgpt_hf authors. Licensed under the Apache License, Version 2.0.
"""`pretrain`: prepare the model, optimiser, schedule and data with Accelerate, resume if asked, then loop over
optimiser steps (forward, `accelerator.backward`, step), logging and checkpointing as it goes."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.logging import get_logger
from accelerate.utils import (
    ProjectConfiguration,
    is_tensorboard_available,
    send_to_device,
    set_seed,
)
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ...configuration_spectralgpt import SpectralGPTConfig
from ..optimization import (
    adamw_kernel_options,
    global_batch_size,
    scaled_learning_rate,
    weight_decay_parameter_groups,
)
from .arguments import PretrainingArguments
from .checkpoints import (
    StopRequest,
    TrainingProgress,
    checkpoint_to_resume,
    save_checkpoint,
    save_final_model,
)
from .data import TrainingData, build_training_data, pretraining_image_processor
from .model import build_model

logger = get_logger(__name__)


def pretrain(args: PretrainingArguments) -> Path | None:
    """
    Pretrains (or continues pretraining) a SpectralGPT masked autoencoder; see `spectralgpt_hf.training.pretraining`.

    Returns:
        The folder of the final model (`output_dir/model`), or None when a signal stopped the run early (after
        saving a checkpoint to continue from with `--resume`).
    """
    output_dir = Path(args.output_dir)
    resume_from = checkpoint_to_resume(args.resume, output_dir / "checkpoints")
    accelerator = create_accelerator(args)
    set_seed(args.seed)
    model = build_model(args)
    config = model.config
    data = build_training_data(args, config, accelerator)
    settings = RunSettings.of(args, data, config, accelerator.num_processes)
    optimizer = torch.optim.AdamW(
        weight_decay_parameter_groups(model, args.weight_decay), lr=settings.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2), **adamw_kernel_options(accelerator.device, args.adamw_implementation),
    )  # fmt: skip
    scheduler = get_cosine_schedule_with_warmup(optimizer, settings.warmup_steps, settings.total_steps)
    model, optimizer, dataloader, scheduler = prepare(accelerator, args, model, optimizer, data, scheduler)

    progress = TrainingProgress(settings=asdict(settings))
    accelerator.register_for_checkpointing(progress)
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        logger.info(f"Resumed from {resume_from} at step {progress.step} (epoch {progress.epoch}).")
    log_plan(settings, data, accelerator.num_processes, args.per_device_batch_size)
    accelerator.init_trackers(args.run_name, config=tracker_config(args))
    loop = PretrainingLoop(args, accelerator, model, optimizer, scheduler, dataloader, data, progress, settings)
    try:
        with StopRequest() as stop:
            loop.run(stop)
        if stop.requested:
            logger.warning(f"Stopped by a signal at step {progress.step}; saved {loop.last_saved}. Continue with "
                           "--resume.")  # fmt: skip
            return None
        destination = save_final_model(accelerator, model, pretraining_image_processor(config), output_dir / "model")
        logger.info(f"Wrote the pretrained model to {destination}")
        return destination
    finally:
        accelerator.end_training()  # closes the trackers and the process group


# --- Preparation ---------------------------------------------------------------------------------------------------


@dataclass
class RunSettings:
    """What a run is; a resumed run must have the same (`TrainingProgress` refuses a checkpoint of other settings)."""

    num_samples: int | None
    global_batch_size: int
    gradient_accumulation_steps: int
    total_steps: int
    warmup_steps: int
    learning_rate: float
    seed: int
    image_size: int

    @classmethod
    def of(
        cls, args: PretrainingArguments, data: TrainingData, config: SpectralGPTConfig, num_processes: int
    ) -> RunSettings:
        batch = (args.per_device_batch_size, args.gradient_accumulation_steps, num_processes)
        learning_rate = args.learning_rate
        if learning_rate is None:
            learning_rate = scaled_learning_rate(args.base_learning_rate, *batch)
        total_steps = args.max_steps if args.max_steps > 0 else args.num_train_epochs * data.steps_per_epoch
        warmup_steps = args.warmup_steps
        if warmup_steps is None:
            warmup_steps = round(args.warmup_epochs * data.steps_per_epoch)
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"The warm-up ({warmup_steps} steps) must be shorter than the run ({total_steps} steps); lower "
                "--warmup_epochs or --warmup_steps, or train longer."
            )
        return cls(
            data.num_samples, global_batch_size(*batch), args.gradient_accumulation_steps, total_steps, warmup_steps,
            learning_rate, args.seed, config.image_size,
        )  # fmt: skip


def create_accelerator(args: PretrainingArguments) -> Accelerator:
    output_dir = Path(args.output_dir)
    return Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=tracker_names(args.report_to),
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # Each process takes its slice of the sampler's global batches.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # torch.compile applied by `accelerator.prepare`; unwrap_model takes it off for saving.
        dynamo_backend=args.torch_compile_backend if args.torch_compile else None,
    )


def tracker_names(report_to: str) -> list[str] | str | None:
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    if names in ([], ["none"]):
        return None
    if names == ["all"]:
        return "all"
    if "tensorboard" in names and not is_tensorboard_available():
        raise ValueError(
            "--report_to tensorboard needs the tensorboardX (or tensorboard) package: pip install tensorboardX, or "
            "pass --report_to none."
        )
    return names


def tracker_config(args: PretrainingArguments) -> dict:
    """The arguments as trackers take them: scalars, everything else as text."""
    return {name: value if isinstance(value, (int, float, str, bool)) else str(value)
            for name, value in asdict(args).items()}  # fmt: skip


def prepare(accelerator: Accelerator, args: PretrainingArguments, model, optimizer, data: TrainingData, scheduler):
    """`accelerator.prepare`, except for a stream, which `build_training_data` has already split across processes."""
    deepspeed_plugin = accelerator.state.deepspeed_plugin
    if deepspeed_plugin is not None:
        # DeepSpeed reads the micro-batch from a prepared loader's batch_size, which a batch sampler leaves unset.
        deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = args.per_device_batch_size
    if data.is_streaming:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
        dataloader = data.dataloader
    else:
        model, optimizer, dataloader, scheduler = accelerator.prepare(model, optimizer, data.dataloader, scheduler)
    if accelerator.gradient_accumulation_steps != args.gradient_accumulation_steps:
        raise ValueError(
            f"The Accelerate (or DeepSpeed) config accumulates {accelerator.gradient_accumulation_steps} steps but "
            f"--gradient_accumulation_steps is {args.gradient_accumulation_steps}; set the same value in both, or "
            "leave it out of the config."
        )
    return model, optimizer, dataloader, scheduler


def log_plan(settings: RunSettings, data: TrainingData, num_processes: int, per_device_batch_size: int) -> None:
    logger.info(
        f"Pretraining {settings.image_size} px, {settings.num_samples or 'streamed'} samples, {num_processes} "
        f"processes x {per_device_batch_size} x {settings.gradient_accumulation_steps} accumulation = "
        f"{settings.global_batch_size} per step, lr {settings.learning_rate:.3g}, {settings.total_steps} steps "
        f"({data.steps_per_epoch or 'unknown'} per epoch), warm-up {settings.warmup_steps}."
    )


# --- The loop ------------------------------------------------------------------------------------------------------


def on_any_process(accelerator: Accelerator, condition: bool) -> bool:
    if accelerator.num_processes == 1:
        return condition
    flags = accelerator.gather(torch.tensor([int(condition)], device=accelerator.device))
    return bool(flags.any())


def optimizer_step_groups(batches, size: int, accelerator: Accelerator, check_all_processes: bool):
    """Groups of `size` batches, one per optimiser step; stops at the first group that is incomplete on any
    process (streams may end at different points on different processes)."""
    iterator = iter(batches)
    while True:
        group = list(itertools.islice(iterator, size))
        incomplete = len(group) < size
        if check_all_processes:
            incomplete = on_any_process(accelerator, incomplete)
        if incomplete:
            return
        yield group


class LoggingWindow:
    """The summed loss and the time of the forward passes since the last log."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        self.loss.zero_()
        self.batches, self.start = 0, time.perf_counter()

    def add(self, loss: torch.Tensor) -> None:
        self.loss += loss.detach().float()
        self.batches += 1


class PretrainingLoop:
    """The optimiser steps of a prepared run, epoch by epoch, from where `progress` says it is."""

    def __init__(self, args, accelerator, model, optimizer, scheduler, dataloader, data, progress, settings):
        self.args, self.accelerator, self.model, self.optimizer = args, accelerator, model, optimizer
        self.scheduler, self.dataloader, self.data, self.progress = scheduler, dataloader, data, progress
        self.total_steps = settings.total_steps
        self.checkpoints_dir = Path(args.output_dir) / "checkpoints"
        self.window = LoggingWindow(accelerator.device)
        self.last_saved = None

    def run(self, stop: StopRequest) -> None:
        progress = self.progress
        with tqdm(total=self.total_steps, initial=progress.step, disable=not self.accelerator.is_main_process,
                  desc="steps") as self.bar:  # fmt: skip
            while progress.step < self.total_steps and not stop.requested:
                if self.run_epoch(stop):
                    progress.epoch, progress.steps_in_epoch = progress.epoch + 1, 0

    def run_epoch(self, stop: StopRequest) -> bool:
        """The rest of the current epoch; whether it ran to its end (rather than the run's end or a stop)."""
        for group in self.epoch_step_groups():
            self.optimizer_step(group)
            if self.after_step(stop):
                return False
        if self.progress.steps_in_epoch == 0:
            raise ValueError(
                f"Epoch {self.progress.epoch} gave no complete optimiser step on some process: the streamed "
                "dataset is too small for the batch size, process count and accumulation steps."
            )
        return True

    def epoch_step_groups(self):
        """The current epoch's batches, one group per optimiser step, without those a resumed run has done."""
        accumulation = self.args.gradient_accumulation_steps
        self.data.start_epoch(self.progress.epoch)
        batches = self.dataloader
        if self.progress.steps_in_epoch:
            batches = self.accelerator.skip_first_batches(batches, self.progress.steps_in_epoch * accumulation)
        return optimizer_step_groups(batches, accumulation, self.accelerator, self.data.is_streaming)

    def optimizer_step(self, group: list[dict]) -> None:
        accelerator, model, optimizer = self.accelerator, self.model, self.optimizer
        for batch in group:
            with accelerator.accumulate(model):
                inputs = self.data.on_device(send_to_device(batch, accelerator.device, non_blocking=True))
                loss = model(**inputs, mask_ratio=self.args.mask_ratio).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and self.args.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(model.parameters(), self.args.max_grad_norm)
                optimizer.step()
                self.scheduler.step()
                optimizer.zero_grad()
            self.window.add(loss)
        self.progress.step += 1
        self.progress.steps_in_epoch += 1
        self.bar.update()

    def after_step(self, stop: StopRequest) -> bool:
        """Logs and checkpoints when due; whether the run ends here (its last step, or a stop on any process)."""
        step, finished = self.progress.step, self.progress.step >= self.total_steps
        if step % self.args.logging_steps == 0 or finished:
            self.log()
        stop.requested = on_any_process(self.accelerator, stop.requested)
        if step % self.args.save_steps == 0 or stop.requested:
            self.last_saved = save_checkpoint(
                self.accelerator, self.model, self.checkpoints_dir, step, self.args.save_total_limit
            )
        return finished or stop.requested

    def log(self) -> None:
        window, accelerator = self.window, self.accelerator
        mean_loss = (accelerator.reduce(window.loss, "mean") / window.batches).item()
        images = window.batches * self.args.per_device_batch_size * accelerator.num_processes
        values = {
            "loss": mean_loss,
            "learning_rate": self.scheduler.get_last_lr()[0],
            "images_per_second": images / (time.perf_counter() - window.start),
            "epoch": self.progress.epoch,
        }
        accelerator.log(values, step=self.progress.step)
        self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{values['learning_rate']:.3g}")
        window.reset()
