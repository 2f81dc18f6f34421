"""Many-scene runs: one model over a list of scenes (or pairs of dates), one output per scene in a folder, sharded
across the processes of `accelerate launch`, resumable, with a run index.

Each scene's output is `<output>/<name>.tif`, where `name` comes from the scene id (see `scene_names`), and beside it
`<name>.run.json`: the model's fingerprint and the arguments it was made with, written atomically after the
output. A rerun skips a scene whose output and record exist and match the model and arguments (`overwrite=True`
redoes it). Each process writes its own scenes; at the end the main process writes `<output>/index.jsonl`, one row
per scene in input order: input(s), output, status ("done", "skipped", "failed"), seconds, error, process, and the
footprint (bounds in the scene's CRS and a longitude/latitude box).
"""

import contextlib
import csv
import glob
import hashlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rasterio
import torch
from rasterio.warp import transform_bounds
from tqdm.auto import tqdm

from ..utils.atomic import atomic_file
from .scene import embed_scene, predict_scene

logger = logging.getLogger(__name__)

INDEX_NAME = "index.jsonl"
RECORD_SUFFIX = ".run.json"
TASKS = {"predict": predict_scene, "embed": embed_scene}
ON_ERROR = ("skip", "stop")
# Exit codes of a run: every scene done or skipped; some failed and the others were run; stopped at a failure.
EXIT_OK, EXIT_FAILED_SCENES, EXIT_STOPPED = 0, 1, 3
# Options that choose how a scene is computed but not what comes out; they are left out of the record.
NOT_RECORDED = ("progress", "reader", "prefetch")


@dataclass
class SceneJob:
    """One scene (or two dates of one place, for change detection) and the stem of its output's name."""

    input: str
    input_2: str | None = None
    name: str = ""


@dataclass
class IndexRow:
    input: str
    input_2: str | None
    output: str
    status: str
    seconds: float
    error: str | None = None
    process: int = 0
    crs: str | None = None
    bounds: list[float] | None = None
    footprint: list[float] | None = field(default=None)  # west, south, east, north in degrees


# Inputs ---------------------------------------------------------------------------------------------------------


def expand_inputs(values: Sequence[str | os.PathLike]) -> list[str]:
    """Scenes named by `values`, in order: paths, glob patterns (sorted matches), text files (`.txt`, one scene per
    line, `#` comments, relative paths taken from the file's folder) and STAC ItemCollection JSON files (each item
    by its `self` link, else its id; reading an item is `open_scene`'s part)."""
    scenes = []
    for value in map(str, values):
        if glob.has_magic(value):
            matches = sorted(glob.glob(value))
            if not matches:
                raise FileNotFoundError(f"No scene matches {value}.")
            scenes += matches
        elif value.endswith(".txt") and Path(value).is_file():
            scenes += scene_list_file(Path(value))
        elif value.endswith(".json") and Path(value).is_file() and is_item_collection(Path(value)):
            scenes += item_collection_scenes(Path(value))
        else:
            scenes.append(value)
    return scenes


def resolve(entry: str, folder: Path) -> str:
    if "://" in entry or Path(entry).is_absolute():
        return entry
    return str(folder / entry)


def scene_list_file(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [resolve(line, path.parent) for line in lines if line and not line.startswith("#")]


def is_item_collection(path: Path) -> bool:
    with contextlib.suppress(ValueError, OSError):
        document = json.loads(path.read_text())
        return isinstance(document, dict) and document.get("type") == "FeatureCollection"
    return False


def item_collection_scenes(path: Path) -> list[str]:
    scenes = []
    for item in json.loads(path.read_text()).get("features", []):
        links = {link.get("rel"): link.get("href") for link in item.get("links", [])}
        if links.get("self"):
            scenes.append(resolve(links["self"], path.parent))
        elif item.get("id"):
            scenes.append(item["id"])
        else:
            raise ValueError(f"An item of {path} has neither a self link nor an id.")
    return scenes


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(first, second) dates from a CSV with `first` and `second` columns, or a JSON list of such objects (or of
    two-element lists); relative paths are taken from the file's folder."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        entries = json.loads(path.read_text())
        rows = [(entry["first"], entry["second"]) if isinstance(entry, dict) else tuple(entry) for entry in entries]
    else:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"first", "second"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{path} needs the columns first and second; it has {reader.fieldnames}.")
            rows = [(row["first"], row["second"]) for row in reader]
    if any(len(row) != 2 for row in rows):
        raise ValueError(f"Every entry of {path} must name two dates (first, second).")
    return [(resolve(str(first), path.parent), resolve(str(second), path.parent)) for first, second in rows]


def scene_id(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tif", ".tiff", ".vrt", ".json", ".jp2", ".SAFE", ".zip"):
        if name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
    return name


def scene_names(jobs: Sequence[tuple[str, str | None]]) -> list[str]:
    """Stable output stems: the scene id (`first__second` for pairs) made file-safe; ids that occur more than once
    get a short hash of the full input appended, so every scene keeps its name whatever else is in the run."""
    names = []
    for input, input_2 in jobs:
        name = scene_id(input) if input_2 is None else f"{scene_id(input)}__{scene_id(input_2)}"
        names.append(re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scene")
    repeated = {name for name in names if names.count(name) > 1}
    for index, name in enumerate(names):
        if name in repeated:
            digest = hashlib.sha1("\n".join(filter(None, jobs[index])).encode()).hexdigest()[:8]
            names[index] = f"{name}-{digest}"
    if len(set(names)) != len(names):
        raise ValueError("The same scene is listed twice; list each scene once.")
    return names


def scene_jobs(inputs: Sequence[str], inputs_2: Sequence[str] | None = None) -> list[SceneJob]:
    """Jobs for `inputs` (and, for change detection, the aligned second dates `inputs_2`)."""
    if inputs_2 is not None and len(inputs_2) != len(inputs):
        raise ValueError(f"{len(inputs)} first dates but {len(inputs_2)} second dates; give one second per first.")
    pairs = list(zip(inputs, inputs_2 or [None] * len(inputs)))
    return [SceneJob(input, input_2, name) for (input, input_2), name in zip(pairs, scene_names(pairs))]


# Records of what made an output -----------------------------------------------------------------------------------


def model_fingerprint(model) -> str:
    """sha256 of the model's class, config and weights."""
    digest = hashlib.sha256(type(model).__name__.encode())
    digest.update(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def recorded_arguments(task: str, job: SceneJob, options: dict) -> dict:
    arguments = {"task": task, "input_2": job.input_2}
    for key, value in sorted(options.items()):
        if key in NOT_RECORDED:
            continue
        if key == "processor" and value is not None:
            value = value.to_dict()
        arguments[key] = value
    return json.loads(json.dumps(arguments, default=str))


def is_complete(output: Path, record: dict) -> bool:
    path = output.with_name(output.name.removesuffix(".tif") + RECORD_SUFFIX)
    if not (output.is_file() and path.is_file()):
        return False
    with contextlib.suppress(ValueError, OSError):
        saved = json.loads(path.read_text())
        return (saved.get("model"), saved.get("arguments")) == (record["model"], record["arguments"])
    return False


def write_json(path: Path, value) -> None:
    with atomic_file(path) as temporary:
        temporary.write_text(json.dumps(value, indent=1) + "\n")


def footprint(output: Path) -> dict:
    with rasterio.open(output) as dataset:
        bounds = list(dataset.bounds)
        crs = dataset.crs
    if crs is None:
        return {"bounds": bounds}
    return {"crs": crs.to_string(), "bounds": bounds, "footprint": list(transform_bounds(crs, "EPSG:4326", *bounds))}


# Running ----------------------------------------------------------------------------------------------------------


@dataclass
class Processes:
    """This process's place among those of `accelerate launch` (one process without it)."""

    index: int = 0
    count: int = 1
    state: object = None

    @classmethod
    def current(cls) -> "Processes":
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        # as Accelerator does: the CPU backend (gloo) when asked for or when there is no GPU
        state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes, state)

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit in the main thread, so a killed run removes its partial files on the way out."""
    if os.name == "nt" or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_scene(model, task: str, job: SceneJob, output: Path, record: dict, options: dict, overwrite: bool) -> str:
    if not overwrite and is_complete(output, record):
        return "skipped"
    started = time.perf_counter()
    TASKS[task](model, job.input, output, **({"input_2": job.input_2} if job.input_2 else {}), **options)
    write_json(
        output.with_name(job.name + RECORD_SUFFIX),
        {**record, "input": job.input, "input_2": job.input_2, "seconds": time.perf_counter() - started},
    )
    return "done"


def run_scenes(
    model,
    scenes: Sequence[SceneJob | str | tuple[str, str]],
    output: str | os.PathLike,
    *,
    task: str = "predict",
    overwrite: bool = False,
    on_error: str = "skip",
    progress: bool = True,
    **scene_options,
) -> list[IndexRow]:
    """
    Runs `predict_scene` or `embed_scene` (`task`) over `scenes` into the folder `output` and returns the run
    index (all scenes, in order; written to `<output>/index.jsonl` by the main process).

    Under `accelerate launch` the scenes are shared out between the processes (scene i goes to process
    i % processes), each writing its own; call it in every process with the same arguments. A scene whose output
    is complete and was made by the same model with the same arguments is skipped unless `overwrite`. A failing
    scene is recorded with its error; `on_error="skip"` goes on with the next, "stop" ends this process's share.

    Args:
        scenes: `SceneJob`s, paths (see `expand_inputs` for lists, globs and ItemCollections) or (first, second)
            pairs of dates for change detection.
        scene_options: passed to `predict_scene` / `embed_scene` for every scene (processor, tile, overlap,
            batch_size, reader, prefetch, and `open_scene` options).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}.")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}.")
    jobs = as_jobs(scenes)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    processes = Processes.current()
    fingerprint = model_fingerprint(model)
    mine = jobs[processes.index :: processes.count]
    main = processes.index == 0
    rows = []
    with terminate_as_exit():
        for job in tqdm(mine, unit="scene", disable=not (progress and main)):
            path = output / f"{job.name}.tif"
            record = {"model": fingerprint, "arguments": recorded_arguments(task, job, scene_options)}
            started = time.perf_counter()
            options = {**scene_options, "progress": progress and main}
            try:
                status, error = run_scene(model, task, job, path, record, options, overwrite), None
            except Exception as exception:  # recorded in the index; KeyboardInterrupt and SIGTERM still end the run
                status, error = "failed", f"{type(exception).__name__}: {exception}"
                logger.debug("%s failed", job.input, exc_info=True)  # the traceback for --debug; the index has the error
            row = IndexRow(job.input, job.input_2, str(path), status, time.perf_counter() - started, error,
                           processes.index)  # fmt: skip
            if status != "failed":
                row = IndexRow(**{**asdict(row), **footprint(path)})
            rows.append(row)
            if status == "failed" and on_error == "stop":
                break
    write_json(output / f".index-{processes.index}.json", [asdict(row) for row in rows])
    processes.wait()
    index = gather_index(output, jobs, processes.count, write=main)
    processes.wait()
    if main:
        for rank in range(processes.count):
            (output / f".index-{rank}.json").unlink(missing_ok=True)
    return index


def as_jobs(scenes) -> list[SceneJob]:
    if all(isinstance(scene, SceneJob) for scene in scenes):
        return list(scenes)
    if any(isinstance(scene, SceneJob) for scene in scenes):
        raise TypeError("Give scenes either all as SceneJobs or all as paths and pairs.")
    single = [isinstance(scene, (str, os.PathLike)) for scene in scenes]
    firsts = [str(scene) if alone else str(scene[0]) for scene, alone in zip(scenes, single)]
    seconds = None if all(single) else [None if alone else str(scene[1]) for scene, alone in zip(scenes, single)]
    return scene_jobs(firsts, seconds)


def gather_index(output: Path, jobs: list[SceneJob], count: int, write: bool) -> list[IndexRow]:
    """The rows of every process, in input order (scenes a stopped process never reached are "not run"), written
    to the index when `write`."""
    rows = {}
    for rank in range(count):
        for row in json.loads((output / f".index-{rank}.json").read_text()):
            rows[row["output"]] = IndexRow(**row)
    index = []
    for position, job in enumerate(jobs):
        path = str(output / f"{job.name}.tif")
        index.append(rows.get(path) or IndexRow(job.input, job.input_2, path, "not run", 0.0, None, position % count))
    if write:
        with atomic_file(output / INDEX_NAME) as temporary:
            temporary.write_text("".join(json.dumps(asdict(row)) + "\n" for row in index))
    return index


def exit_code(index: Sequence[IndexRow], on_error: str) -> int:
    """EXIT_OK when no scene failed, else EXIT_FAILED_SCENES (on_error="skip") or EXIT_STOPPED ("stop")."""
    if not any(row.status == "failed" for row in index):
        return EXIT_OK
    return EXIT_STOPPED if on_error == "stop" else EXIT_FAILED_SCENES


def prepare_model(model, *, dtype: str = "float32", compile: bool = False, task: str = "predict"):
    """The model in `dtype` ("float32", "bfloat16", "float16"), its forward (the encoder's, for embeddings)
    compiled with torch.compile when `compile`."""
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {dtype!r}.")
    model = model.to(dtypes[dtype])
    if compile:
        module = model.base_model if task == "embed" else model
        module.forward = torch.compile(module.forward)
    return model
