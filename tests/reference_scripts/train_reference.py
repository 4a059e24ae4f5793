"""Reference: training iterations per second of nnU-Net v2's `nnUNetTrainer`, its data pipeline included.

Usage:
  train_reference.py prepare SCRATCH RAW_DIR PREPROCESSED_DIR CONFIGURATION WORKERS
  train_reference.py train SCRATCH CONFIGURATION DEVICE ITERATIONS WARMUP BARE_REPEATS

`prepare` lays out nnU-Net's folders under SCRATCH (nnUNet_raw/Dataset999_Reference links RAW_DIR), copies
PREPROCESSED_DIR's plans.json (as nnUNetPlans.json), dataset.json, dataset_fingerprint.json and
splits_final.json (so both tools train fold 0 on the same cases), and runs nnU-Net's `DefaultPreprocessor`
for CONFIGURATION with WORKERS processes, writing nnU-Net's own preprocessed files.

`train` sets threads as `nnUNetv2_train` does (OMP/MKL/OpenBLAS 1; torch threads = CPU count on CPU,
1 on CUDA), builds `nnUNetTrainer(plans, CONFIGURATION, 0, dataset_json, device)` with
nnUNet_compile=f, times BARE_REPEATS bare network steps (after one untimed: forward on a fixed random
batch of the plan's shape, the mean of the outputs as loss, backward, SGD step; no data, no real loss —
the same definition the nnsvc side uses, to separate the torch build and network from the pipeline),
calls `on_train_start()` (network, loss, optimizer, dataloaders with the number of
augmentation worker processes nnU-Net picks for this machine), then times WARMUP untimed and ITERATIONS
timed `train_step(next(dataloader_train))` calls: the seconds blocked in `next` and in `train_step`
separately, the device synchronised before each clock read. Then it stops the workers as `on_train_end`
does (without writing a checkpoint). Peak memory: ru_maxrss of this (main) process, and the largest of
its waited-for children (the augmentation workers). The last stdout line is JSON. Runs only in the
reference environment.
"""

import contextlib
import io
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from preprocess_reference import DATASET, use_scratch


def point_to(root: Path) -> None:
    """nnU-Net's folder variables for a scratch folder `prepare` laid out; before nnunetv2 is imported."""
    os.environ["nnUNet_raw"] = str(root / "raw")
    os.environ["nnUNet_preprocessed"] = str(root / "preprocessed")
    os.environ["nnUNet_results"] = str(root / "results")


def prepare(root: Path, raw_dir: Path, preprocessed_dir: Path, configuration: str, workers: int) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    use_scratch(root, raw_dir)
    target = root / "preprocessed" / DATASET
    plans = json.loads((preprocessed_dir / "plans.json").read_text())
    plans["dataset_name"] = DATASET
    (target / "nnUNetPlans.json").write_text(json.dumps(plans))
    for name in ("dataset.json", "dataset_fingerprint.json", "splits_final.json"):
        shutil.copy(preprocessed_dir / name, target / name)
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    preprocessor = DefaultPreprocessor(verbose=False)
    preprocessor.show_progress_bar = False
    start = time.perf_counter()
    preprocessor.run(DATASET, configuration, "nnUNetPlans", workers)
    return {"preprocess_seconds": time.perf_counter() - start}


def set_threads_as_nnunetv2_train(device: str) -> None:
    """What `nnunetv2/run/run_training.py` does before and after parsing its arguments."""
    import multiprocessing

    import torch

    if device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    else:
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)


def bare_network_seconds(network, optimizer, shape: list[int], device, repeats: int) -> list[float]:
    """Seconds per forward + backward + SGD step on a fixed random batch, one untimed first; the
    weights and optimizer state are put back afterwards."""
    import copy

    import torch

    saved = copy.deepcopy(network.state_dict()), copy.deepcopy(optimizer.state_dict())

    is_cuda = device.type == "cuda"
    image = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    seconds = []
    for repeat in range(repeats + 1):
        if is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=is_cuda):
            outputs = network(image)
            outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
            loss = sum(output.float().mean() for output in outputs)
        loss.backward()
        optimizer.step()
        if is_cuda:
            torch.cuda.synchronize()
        if repeat:
            seconds.append(time.perf_counter() - start)
    optimizer.zero_grad(set_to_none=True)
    network.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    return seconds


def train(
    root: Path, configuration: str, device_name: str, iterations: int, warmup: int, bare_repeats: int
) -> dict:
    point_to(root)
    os.environ["nnUNet_compile"] = "f"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    import torch

    set_threads_as_nnunetv2_train(device_name)
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    base = root / "preprocessed" / DATASET
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # nnunetv2.run.run_training sets this before building the trainer
    dataset_json = json.loads((base / "dataset.json").read_text())
    device = torch.device(device_name)
    is_cuda = device.type == "cuda"

    def sync() -> None:
        if is_cuda:
            torch.cuda.synchronize()

    trainer = nnUNetTrainer(plans, configuration, 0, dataset_json, device)
    trainer.initialize()
    patch_size = list(trainer.configuration_manager.patch_size)
    bare_shape = [trainer.batch_size, trainer.num_input_channels, *patch_size]
    bare = bare_network_seconds(trainer.network, trainer.optimizer, bare_shape, device, bare_repeats)
    setup_start = time.perf_counter()
    trainer.on_train_start()
    trainer.on_train_epoch_start()
    setup_seconds = time.perf_counter() - setup_start
    waits, steps, losses = [], [], []
    try:
        for iteration in range(warmup + iterations):
            sync()
            start = time.perf_counter()
            batch = next(trainer.dataloader_train)
            loaded = time.perf_counter()
            losses.append(float(trainer.train_step(batch)["loss"]))
            sync()
            end = time.perf_counter()
            if iteration >= warmup:
                waits.append(loaded - start)
                steps.append(end - loaded)
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # as on_train_end shuts the workers down
            for loader in (trainer.dataloader_train, trainer.dataloader_val):
                if hasattr(loader, "_finish"):
                    loader._finish()
    return {
        "wait_seconds": waits,
        "step_seconds": steps,
        "losses": losses,
        "bare_network_seconds": bare,
        "setup_seconds": setup_seconds,
        "patch_size": patch_size,
        "batch_size": trainer.batch_size,
        "da_processes_train": getattr(trainer.dataloader_train, "num_processes", 0),
        "da_processes_val": getattr(trainer.dataloader_val, "num_processes", 0),
        "allowed_n_proc_da": get_allowed_n_proc_DA(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_mb_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if is_cuda else None,
    }


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "prepare":
        root, raw_dir, preprocessed_dir, configuration, workers = args
        result = prepare(
            Path(root).resolve(),
            Path(raw_dir).resolve(),
            Path(preprocessed_dir).resolve(),
            configuration,
            int(workers),
        )
    elif command == "train":
        root, configuration, device, iterations, warmup, bare_repeats = args
        result = train(
            Path(root).resolve(), configuration, device, int(iterations), int(warmup), int(bare_repeats)
        )
    else:
        raise SystemExit(f"unknown command {command!r}; use prepare or train")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
