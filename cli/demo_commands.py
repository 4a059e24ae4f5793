"""`nnsvc demo`: the whole service path on a generated dataset, over HTTP, in minutes on a CPU.

It starts the embedded service (`nnsvc serve`: SQLite database, SQLite-backed broker, the API and one
worker) under WORKDIR/data, makes an admin key, generates a small 2D sample dataset with labelled
held-out cases, and then, as any client would: uploads it, plans, trains one fold on a short
schedule, segments a held-out case and evaluates the model on every held-out case, following each
job's event stream with progress bars. It ends with the Dice reached and where the segmentation, the
training curves and the API docs are, and stops the service.

The sample is 2D so that a few minutes of CPU training give a Dice worth reading; a 3D dataset runs
the same path but needs hours of GPU training to mean anything (the README shows that path).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import tarfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cli.embedded_server import EmbeddedServer, create_api_key, embedded_settings, free_port
from cli.progress import ProgressBars
from cli.service_client import JobView, ServiceClient
from core.errors import ProblemsError
from core.synthetic import PRESETS, generate_dataset
from service.db.models import Role

SAMPLE = PRESETS["2d"]
MARKER = ".nnsvc-demo"
MODEL_NAME = "demo"
DEFAULT_EPOCHS = 8
DEFAULT_ITERATIONS = 25
# The pseudo-Dice of each epoch only draws the curves here: 5 batches instead of the method's 50.
DEFAULT_VALIDATION_ITERATIONS = 5


class DemoError(ProblemsError):
    hint = "pass --workdir with a new or empty folder"


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the whole service on a generated dataset: upload, plan, train, predict, evaluate",
        description=(
            "Start the embedded service (API + one worker, everything under WORKDIR/data), generate a "
            "small 2D sample dataset and walk it through upload -> plan -> train -> predict -> evaluate "
            "over HTTP, showing each job's progress. Ends with the Dice reached on held-out cases and "
            "where the segmentation, the training curves and the API docs are. The defaults take a few "
            "minutes on a laptop CPU; --epochs 1 --iterations-per-epoch 2 checks the path quickly with a "
            "useless model."
        ),
    )
    demo.add_argument(
        "--workdir",
        type=Path,
        default=Path("demo-output"),
        help="folder for the sample, the service's data and the results; an earlier demo's folder is "
        "reused from scratch (default: demo-output)",
    )
    sample = demo.add_argument_group("sample dataset")
    sample.add_argument("--cases", type=int, default=20, help="generated cases in all (default: 20)")
    sample.add_argument(
        "--test-cases", type=int, default=4, help="of those, held out for evaluation (default: 4)"
    )
    sample.add_argument(
        "--image-size", type=int, default=96, help="width and height of the images, in pixels (default: 96)"
    )
    budget = demo.add_argument_group("training budget")
    budget.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, help=f"training epochs (default: {DEFAULT_EPOCHS})"
    )
    budget.add_argument(
        "--iterations-per-epoch",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"training batches per epoch (default: {DEFAULT_ITERATIONS})",
    )
    budget.add_argument(
        "--validation-iterations",
        type=int,
        default=DEFAULT_VALIDATION_ITERATIONS,
        help=f"pseudo-Dice batches per epoch, for the curves (default: {DEFAULT_VALIDATION_ITERATIONS})",
    )
    demo.add_argument("--port", type=int, help="port of the API on 127.0.0.1 (default: a free one)")
    demo.add_argument(
        "--keep-serving",
        action="store_true",
        help="keep the service running at the end (browse /docs with the printed key) until Ctrl-C",
    )
    demo.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    demo.set_defaults(handler=run_demo)


@dataclass(frozen=True)
class Budget:
    epochs: int
    iterations_per_epoch: int
    validation_iterations: int


class JobBars:
    """Draws a job's progress, or that of the child it is waiting on (a training's running fold)."""

    def __init__(self, bars: ProgressBars) -> None:
        self.bars = bars

    def __call__(self, job: JobView) -> None:
        running = [child for child in job.get("children", []) if child["status"] == "running"]
        active = running[-1] if running else job
        progress = active["progress"]
        if active["status"] == "queued":
            place = job.get("queue_position")
            self.bars(0.0, "queued", f"place {place} in the queue" if place else "")
            return
        metrics = {
            name: value
            for name, value in (progress.get("metrics") or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        if progress.get("eta_s") is not None:
            metrics["eta_s"] = progress["eta_s"]
        self.bars(progress["fraction"], progress["stage"], progress.get("message", ""), **metrics)

    def done(self) -> None:
        self.bars.close()


def make_sample(folder: Path, num_cases: int, num_test: int, image_size: int) -> Path:
    """A generated 2D dataset in the nnU-Net v2 raw format whose last `num_test` cases are held out
    with their labels (imagesTs/, labelsTs/)."""
    problems = []
    if num_test < 1:
        problems.append(f"--test-cases must be at least 1, got {num_test}")
    if num_cases - num_test < 5:
        problems.append(f"--cases must leave at least 5 training cases (5 folds), got {num_cases - num_test}")
    if image_size < 32:
        problems.append(f"--image-size must be at least 32, got {image_size}")
    if problems:
        raise ProblemsError(problems)
    spec = replace(SAMPLE, num_cases=num_cases, shape=(1, image_size, image_size))
    raw = generate_dataset(folder / SAMPLE.name, spec, seed=0)
    (raw / "imagesTs").mkdir()
    (raw / "labelsTs").mkdir()
    for index in range(num_cases - num_test, num_cases):
        image, label = f"case_{index:03d}_0000{spec.file_ending}", f"case_{index:03d}{spec.file_ending}"
        (raw / "imagesTr" / image).rename(raw / "imagesTs" / image)
        (raw / "labelsTr" / label).rename(raw / "labelsTs" / label)
    document = json.loads((raw / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**document, "numTraining": num_cases - num_test}, indent=2))
    return raw


def pack(raw: Path) -> Path:
    archive = raw.with_name(f"{raw.name}.tar.gz")
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(raw, arcname=raw.name)
    return archive


def upload_dataset(client: ServiceClient, archive: Path) -> dict[str, Any]:
    with archive.open("rb") as stream:
        files = {"archive": (archive.name, stream, "application/gzip")}
        return dict(client.call("POST", "/v1/datasets/upload", files=files))


def plan_dataset(client: ServiceClient, dataset_id: str, show: JobBars) -> dict[str, Any]:
    accepted = client.call("POST", "/v1/plans", json={"dataset_id": dataset_id})
    client.follow(accepted["job"]["id"], show)
    show.done()
    return dict(client.call("GET", f"/v1/plans/{accepted['plan']['id']}"))


def train_model(client: ServiceClient, plan_id: str, budget: Budget, show: JobBars) -> JobView:
    """Train fold 0 of every planned configuration; the finished parent job (its result names the
    registered model, its first child is the fold's job with progress.png)."""
    body = {
        "plan_id": plan_id,
        "configurations": "auto",
        "folds": [0],
        "epochs": budget.epochs,
        "iterations_per_epoch": budget.iterations_per_epoch,
        "validation_iterations": budget.validation_iterations,
        "model_name": MODEL_NAME,
    }
    job = client.call("POST", "/v1/trainings", json=body)
    finished = client.follow(job["id"], show)
    show.done()
    return finished


def predict_case(client: ServiceClient, model: str, channels: list[Path], show: JobBars) -> dict[str, Any]:
    fields = {"model": model, "case_id": channels[0].name.split("_0000")[0]}
    with ExitStack() as opened:
        files = [("channels", (path.name, opened.enter_context(path.open("rb")))) for path in channels]
        accepted = client.call("POST", "/v1/predictions", data=fields, files=files)
    client.follow(accepted["job"]["id"], show)
    show.done()
    return dict(client.call("GET", f"/v1/predictions/{accepted['prediction']['id']}"))


def evaluate_model(client: ServiceClient, model: str, dataset_id: str, show: JobBars) -> dict[str, Any]:
    accepted = client.call("POST", "/v1/evaluations", json={"model": model, "dataset_id": dataset_id})
    client.follow(accepted["job"]["id"], show)
    show.done()
    return dict(client.call("GET", f"/v1/evaluations/{accepted['evaluation']['id']}"))


def prepare_workdir(workdir: Path) -> Path:
    """An empty work folder; an earlier demo's (it holds the marker file) is cleared first."""
    workdir = workdir.expanduser().resolve()
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise DemoError(f"{workdir} holds files that an earlier demo did not write; not touching them")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("written by `nnsvc demo`; the next demo run in this folder clears it\n")
    return workdir


def stop_on_sigterm(signal_number: int, _frame: object) -> None:
    """SIGTERM (a `timeout`, a service manager) unwinds like Ctrl-C, so the server is stopped too."""
    raise SystemExit(128 + signal_number)


def run_demo(arguments: argparse.Namespace) -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    budget = Budget(arguments.epochs, arguments.iterations_per_epoch, arguments.validation_iterations)
    if min(budget.epochs, budget.iterations_per_epoch, budget.validation_iterations) < 1:
        raise ProblemsError(
            f"--epochs, --iterations-per-epoch and --validation-iterations must be at least 1, got {budget}"
        )
    workdir = prepare_workdir(arguments.workdir)
    raw = make_sample(workdir / "sample", arguments.cases, arguments.test_cases, arguments.image_size)
    print(f"1/7 generated {arguments.cases} 2D sample cases ({arguments.test_cases} held out) in {raw}")
    settings = embedded_settings(workdir / "data")
    key = create_api_key(settings, Role.admin, "nnsvc demo")
    key_file = workdir / "admin-key.txt"
    key_file.write_text(f"{key}\n")
    key_file.chmod(0o600)
    bars = ProgressBars(enabled=not arguments.no_progress)
    server = EmbeddedServer(settings, arguments.port or free_port(), workdir / "server.log")
    print(f"2/7 starting the service at {server.url} (data in {settings.data_root}, log {server.log_path})")
    with server:
        server.start(on_wait=lambda missing: bars(0.0, "starting", f"waiting for {missing}"))
        bars.close()
        with ServiceClient(server.url, key) as client:
            report = walk_through(client, raw, budget, JobBars(bars), workdir / "results")
        print_report(report, server.url, workdir, time.monotonic() - started)
        if arguments.keep_serving:
            serve_until_interrupted(server.url, key_file)
        print("stopping the service")
    return 0


@dataclass(frozen=True)
class Report:
    dice: dict[str, float | None]  # None: the label is absent from both segmentation and reference
    segmentation: Path
    curves: Path | None
    summary: Path


def walk_through(client: ServiceClient, raw: Path, budget: Budget, show: JobBars, results: Path) -> Report:
    """Upload → plan → train → predict → evaluate; the files it fetched and the Dice it reached."""
    archive = pack(raw)
    dataset = upload_dataset(client, archive)
    print(f"3/7 uploaded {archive.name}: dataset {dataset['id']}, {dataset['num_training']} training cases")
    print("4/7 planning and preprocessing (POST /v1/plans)")
    plan = plan_dataset(client, dataset["id"], show)
    configurations = ", ".join(plan["document"]["configurations"])
    print(f"5/7 training {configurations} fold 0, {budget.epochs} epoch(s) of {budget.iterations_per_epoch}")
    training = train_model(client, plan["id"], budget, show)
    model = f"{training['result']['model_name']}:{training['result']['version']}"
    fold_job = next(child["id"] for child in training["children"] if child["kind"] == "train_fold")
    curves = None
    if "progress.png" in (client.call("GET", f"/v1/jobs/{fold_job}")["result"] or {}).get("artifacts", {}):
        curves = client.download(f"/v1/jobs/{fold_job}/artifacts/progress.png", results / "progress.png")
    case = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[0]
    print(f"6/7 model {model} registered; segmenting held-out {case.name} (POST /v1/predictions)")
    prediction = predict_case(client, model, [case], show)
    segmentation = client.download(
        f"/v1/predictions/{prediction['id']}/segmentation", results / case.name.replace("_0000", "")
    )
    print("7/7 evaluating the model on every held-out case (POST /v1/evaluations)")
    evaluation = evaluate_model(client, model, dataset["id"], show)
    summary = results / "summary.json"
    summary.write_text(json.dumps(evaluation["summary"], indent=2))
    names = {str(value): name for name, value in dataset["spec"]["labels"].items()}
    dice = {names.get(key, key): metrics["Dice"] for key, metrics in evaluation["summary"]["mean"].items()}
    dice["foreground mean"] = evaluation["summary"]["foreground_mean"]["Dice"]
    return Report(dice, segmentation, curves, summary)


def print_report(report: Report, url: str, workdir: Path, elapsed_s: float) -> None:
    minutes, seconds = divmod(round(elapsed_s), 60)
    print(f"\ndone in {minutes} min {seconds:02d} s. Dice on the held-out cases:")
    for name, dice in report.dice.items():
        print(f"  {name:<16} {'n/a' if dice is None else f'{dice:.4f}'}")
    print(f"segmentation:     {report.segmentation}")
    print(f"training curves:  {report.curves or '(none written)'}")
    print(f"evaluation:       {report.summary}")
    print(f"API docs:         {url}/docs (the admin key is in {workdir / 'admin-key.txt'})")
    print(f"serve it again:   nnsvc serve --data-root {workdir / 'data'}")


def serve_until_interrupted(url: str, key_file: Path) -> None:
    print(f"serving at {url} (docs: {url}/docs, key: {key_file}); press Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
