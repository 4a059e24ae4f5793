"""CI gate: evaluate a model on a reference dataset and fail the pipeline when a label's Dice regressed.

A CI job runs this after training (or before promoting a model version). It posts an evaluation with
one least mean Dice per label (POST /v1/evaluations: the server predicts the dataset's labelled test
cases, imagesTs/ with labelsTs/, or its training cases, and compares), waits for the job, prints one
line per label, and exits non-zero when any threshold is missed, so the pipeline stops there.

Needs Python 3.10+ and httpx (`pip install httpx`) and a key with the evaluator role
(`nnsvc keys create --role evaluator --label ci`):

    python examples/ci_gate.py --url "$NNSVC_URL" --key "$NNSVC_API_KEY" \\
        --model liver:7 --dataset-id 0c1d2e3f... --min-dice liver=0.92 --min-dice tumour=0.65

Thresholds name a label of dataset.json, a label value ("1"), or foreground_mean.

Exit status: 0 every threshold met; 1 a threshold was missed (a regression); 2 the evaluation could not
be run (refused request, failed job, timeout, unreachable server).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx

PASSED, REGRESSED, BROKEN = 0, 1, 2


class CannotEvaluate(Exception):
    """Anything that prevents a verdict; the gate exits 2 rather than pass or fail a model unseen."""


def threshold(text: str) -> tuple[str, float]:
    label, separator, value = text.partition("=")
    try:
        dice = float(value)
    except ValueError:
        dice = -1.0
    if not separator or not label or not 0 <= dice <= 1:
        raise argparse.ArgumentTypeError(f"expected LABEL=DICE with DICE in [0, 1], got {text!r}")
    return label, dice


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    connection = parser.add_argument_group("server")
    connection.add_argument(
        "--url", default=os.environ.get("NNSVC_URL", "http://127.0.0.1:8000"), help="default: $NNSVC_URL"
    )
    connection.add_argument(
        "--key", default=os.environ.get("NNSVC_API_KEY"), help="evaluator key (default: $NNSVC_API_KEY)"
    )
    parser.add_argument("--model", required=True, help="model id, name (latest version) or name:version")
    parser.add_argument("--dataset-id", required=True, help="dataset with labelled cases to evaluate on")
    parser.add_argument(
        "--min-dice",
        type=threshold,
        action="append",
        default=[],
        metavar="LABEL=DICE",
        help="least mean Dice of a label (name, value or foreground_mean); repeat per label",
    )
    parser.add_argument(
        "--training-cases", action="store_true", help="evaluate on imagesTr/ instead of imagesTs/+labelsTs/"
    )
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait (default: 6 h)")
    parser.add_argument("--summary-json", type=Path, help="also save the evaluation's summary.json here")
    arguments = parser.parse_args(argv)
    if not arguments.key:
        parser.error("give --key or set NNSVC_API_KEY")
    return arguments


def checked(response: httpx.Response) -> dict:
    """The JSON body; a refusal becomes CannotEvaluate listing the server's every problem."""
    if response.is_success:
        return response.json()
    try:
        body = response.json()
        problems = [item["problem"] for item in body["detail"]] or [body["message"]]
    except (ValueError, KeyError, TypeError):
        problems = [response.text[:300]]
    raise CannotEvaluate(f"{response.status_code}: " + "; ".join(problems))


def wait_until_finished(client: httpx.Client, job_id: str, timeout_s: float) -> dict:
    """Poll with a growing interval: an evaluation takes minutes to hours, CI need not ask every second."""
    deadline, interval_s = time.monotonic() + timeout_s, 2.0
    while True:
        try:
            job = checked(client.get(f"/v1/jobs/{job_id}"))
        except httpx.TransportError as error:  # a restarting server is no verdict; try again
            print(f"  server unreachable ({error}); retrying", file=sys.stderr)
        else:
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            progress = job["progress"]
            print(f"  {job['status']} {progress['fraction']:.0%} {progress['stage']} {progress['message']}")
        if time.monotonic() > deadline:
            raise CannotEvaluate(f"job {job_id} did not finish within {timeout_s:.0f} s")
        time.sleep(interval_s)
        interval_s = min(interval_s * 1.5, 60.0)


def label_lines(summary: dict, labels: dict[str, object], thresholds: dict[str, float]) -> list[str]:
    """One line per evaluated label: its mean Dice, its threshold and whether it is met."""
    names = {str(value): name for name, value in labels.items()}
    rows = [(names.get(key, key), key, metrics["Dice"]) for key, metrics in summary["mean"].items()]
    rows.append(("foreground_mean", "foreground_mean", summary["foreground_mean"]["Dice"]))
    lines = []
    for name, key, dice in rows:
        least = thresholds.get(name, thresholds.get(key))
        verdict = "" if least is None else ("ok" if dice is not None and dice >= least else "REGRESSION")
        shown = "n/a" if dice is None else f"{dice:.4f}"
        lines.append(
            f"  {name:<20} Dice {shown:>7}  min {'-' if least is None else f'{least:.4f}':>6}  {verdict}"
        )
    return lines


def run(client: httpx.Client, arguments: argparse.Namespace) -> int:
    thresholds = dict(arguments.min_dice)
    body = {
        "model": arguments.model,
        "dataset_id": arguments.dataset_id,
        "thresholds": thresholds,
        "use_training_cases": arguments.training_cases,
    }
    accepted = checked(client.post("/v1/evaluations", json=body))
    evaluation_id, job_id = accepted["evaluation"]["id"], accepted["job"]["id"]
    print(f"evaluation {evaluation_id} of {arguments.model} (job {job_id})")
    job = wait_until_finished(client, job_id, arguments.timeout)
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise CannotEvaluate(
            f"the evaluation job {job['status']}: {error.get('message', '')} {error.get('hint', '')}"
        )
    evaluation = checked(client.get(f"/v1/evaluations/{evaluation_id}"))
    labels = checked(client.get(f"/v1/datasets/{arguments.dataset_id}"))["spec"]["labels"]
    if arguments.summary_json:
        arguments.summary_json.write_text(json.dumps(evaluation["summary"], indent=2))
    cases = len(evaluation["summary"]["metric_per_case"])
    print(f"mean Dice over {cases} case(s):")
    print("\n".join(label_lines(evaluation["summary"], labels, thresholds)))
    for failure in (job.get("result") or {}).get("failures", []):
        print(f"  missed: {failure}")
    print("PASSED" if evaluation["passed"] else "FAILED: Dice regressed below the thresholds")
    return PASSED if evaluation["passed"] else REGRESSED


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    headers = {"Authorization": f"Bearer {arguments.key}"}
    try:
        with httpx.Client(base_url=arguments.url, headers=headers, timeout=60.0) as client:
            return run(client, arguments)
    except (CannotEvaluate, httpx.HTTPError) as error:
        print(f"error: cannot evaluate: {error}", file=sys.stderr)
        return BROKEN


if __name__ == "__main__":
    sys.exit(main())
