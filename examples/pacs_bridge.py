"""PACS bridge: send one study to nnsvc, wait for its segmentation and save it, surviving a flaky network.

What a bridge between a PACS export (or any DICOM router writing NIfTI, NRRD or MHA) and nnsvc does for
each study:

1. POST /v1/predictions with the study's channel files and an `Idempotency-Key` computed from the
   model and the files' bytes, so the same study posted again (a retry, a restarted bridge) maps to
   the prediction made the first time: the server answers 200 with it instead of making another.
2. Retries connection errors and 5xx answers with exponential backoff. Because the key travels with
   every attempt, an attempt whose answer was lost on the way back cannot create a duplicate.
3. Waits on the job's event stream (GET /v1/jobs/{id}/events). When the stream breaks it falls back to
   polling GET /v1/jobs/{id} with backoff, so a proxy that cuts long responses does no harm.
4. Downloads GET /v1/predictions/{id}/segmentation to OUT_DIR/<case><ending> under a temporary name
   and renames it when complete, so whatever watches OUT_DIR never reads half a file.

Needs Python 3.10+ and httpx (`pip install httpx`) and a key with the predictor role
(`nnsvc keys create --role predictor --label pacs`):

    python examples/pacs_bridge.py --url http://127.0.0.1:8000 --key "$NNSVC_API_KEY" \\
        --model liver --out segmentations/ study042_0000.nii.gz

Exit status: 0 the segmentation was saved; 1 the prediction failed (the server's reason is printed);
2 the request was refused, or the server stayed unreachable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
FINAL_STATUSES = {"succeeded", "failed", "cancelled"}
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff")


class GaveUp(Exception):
    """The server refused the request (4xx) or could not be reached after every retry."""


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "channels", type=Path, nargs="+", help="the study's image files, one per channel, in order"
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("NNSVC_URL", "http://127.0.0.1:8000"),
        help="nnsvc's base URL (default: $NNSVC_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("NNSVC_API_KEY"),
        help="API key with the predictor role (default: $NNSVC_API_KEY)",
    )
    parser.add_argument(
        "--model", required=True, help="model name (its latest version), or name:version to pin one"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder the segmentation is saved in")
    parser.add_argument(
        "--case-id", help="names the output file (default: the first file's name without _0000 and ending)"
    )
    parser.add_argument("--idempotency-key", help="default: a hash of the model and the files' bytes")
    parser.add_argument(
        "--retries", type=int, default=6, help="attempts per request after the first (default: 6)"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds to wait for the segmentation (default: 3600)"
    )
    arguments = parser.parse_args(argv)
    if not arguments.key:
        parser.error("give --key or set NNSVC_API_KEY")
    return arguments


def split_name(path: Path) -> tuple[str, str]:
    """("study042", ".nii.gz") from study042_0000.nii.gz: the case and the file ending."""
    ending = next((e for e in IMAGE_ENDINGS if path.name.endswith(e)), path.suffix)
    stem = path.name[: len(path.name) - len(ending)]
    is_channel = len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit()
    return (stem[:-5] if is_channel else stem), ending


def study_key(model: str, channels: list[Path]) -> str:
    """Same model and same bytes, same key: a re-sent study finds its first prediction."""
    digest = hashlib.sha256(model.encode())
    for path in channels:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return f"pacs-{digest.hexdigest()[:40]}"


def backoff_s(attempt: int, retry_after: str | None = None) -> float:
    """1, 2, 4, ... 30 s with jitter, so bridges that failed together do not retry together."""
    if retry_after and retry_after.isdigit():
        return float(retry_after)
    return min(30.0, 2.0**attempt) * random.uniform(0.5, 1.0)


def with_retries(send: Callable[[], httpx.Response], what: str, retries: int) -> httpx.Response:
    """`send` until it gets an answer that is not a transient failure; 4xx raise GaveUp at once."""
    for attempt in range(retries + 1):
        try:
            response = send()
        except httpx.TransportError as error:
            problem, retry_after = f"{type(error).__name__}: {error}", None
        else:
            if response.status_code not in RETRYABLE_STATUS:
                if response.is_error:
                    raise GaveUp(f"{what}: {response.status_code} {describe_refusal(response)}")
                return response
            problem, retry_after = (
                f"{response.status_code} {response.reason_phrase}",
                response.headers.get("Retry-After"),
            )
        if attempt < retries:
            pause = backoff_s(attempt, retry_after)
            print(f"{what}: {problem}; retrying in {pause:.1f} s", file=sys.stderr)
            time.sleep(pause)
    raise GaveUp(f"{what}: still failing after {retries + 1} attempts ({problem})")


def describe_refusal(response: httpx.Response) -> str:
    """nnsvc's error body lists every problem: {"message": ..., "detail": [{"loc", "problem"}]}."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    problems = [item.get("problem", "") for item in body.get("detail") or []]
    return "; ".join(problems) or body.get("message", "")


def post_study(client: httpx.Client, arguments: argparse.Namespace) -> dict:
    key = arguments.idempotency_key or study_key(arguments.model, arguments.channels)
    fields = {"model": arguments.model, "case_id": arguments.case_id}

    def send() -> httpx.Response:
        with ExitStack() as files:  # opened afresh per attempt: a failed attempt consumed the streams
            parts = [
                ("channels", (path.name, files.enter_context(path.open("rb")))) for path in arguments.channels
            ]
            return client.post("/v1/predictions", data=fields, files=parts, headers={"Idempotency-Key": key})

    response = with_retries(send, "posting the study", arguments.retries)
    accepted = response.json()
    known = "already known, not posted again" if response.status_code == 200 else "queued"
    print(f"prediction {accepted['prediction']['id']} (job {accepted['job']['id']}): {known}")
    return accepted


def follow_events(client: httpx.Client, job_id: str) -> bool:
    """Print the job's progress from its event stream; True once the stream says it ended."""
    event = ""
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(10.0, read=60.0)) as stream:
        if stream.status_code != 200:
            return False
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "job":
                show(json.loads(line.partition(":")[2]))
            elif line.startswith("data:") and event == "end":
                return True
    return False


def show(job: dict) -> None:
    progress = job.get("progress") or {}
    stage, message = progress.get("stage", ""), progress.get("message", "")
    print(f"  {job['status']:<9} {progress.get('fraction', 0):>4.0%} {stage} {message}")


def wait_for(client: httpx.Client, job_id: str, arguments: argparse.Namespace) -> dict:
    """The finished job: from the event stream, or by polling with backoff when the stream fails."""
    deadline = time.monotonic() + arguments.timeout
    try:
        follow_events(client, job_id)
    except httpx.TransportError as error:
        print(f"event stream broke ({error}); polling instead", file=sys.stderr)
    pause = 1.0
    while True:
        job = with_retries(
            lambda: client.get(f"/v1/jobs/{job_id}"), "reading the job", arguments.retries
        ).json()
        if job["status"] in FINAL_STATUSES:
            return job
        if time.monotonic() > deadline:
            raise GaveUp(f"job {job_id} still {job['status']} after {arguments.timeout:.0f} s")
        show(job)
        time.sleep(pause)
        pause = min(pause * 1.5, 15.0)


def download(client: httpx.Client, url: str, destination: Path, retries: int) -> Path:
    """Written as .partial and renamed: OUT_DIR only ever holds whole files."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")

    def fetch() -> httpx.Response:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                response.read()  # the error body, for the message
                return response
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            return response

    try:
        with_retries(fetch, "downloading the segmentation", retries)
    except GaveUp:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    missing = [str(path) for path in arguments.channels if not path.is_file()]
    if missing:
        print(f"error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    case_id, ending = split_name(arguments.channels[0])
    arguments.case_id = arguments.case_id or case_id
    headers = {"Authorization": f"Bearer {arguments.key}"}
    with httpx.Client(base_url=arguments.url, headers=headers, timeout=120.0) as client:
        try:
            accepted = post_study(client, arguments)
            job = wait_for(client, accepted["job"]["id"], arguments)
            if job["status"] != "succeeded":
                error = job.get("error") or {}
                print(f"prediction {job['status']}: {error.get('message', '')}", file=sys.stderr)
                for problem in error.get("problems", []):
                    print(f"  - {problem}", file=sys.stderr)
                return 1
            url = f"/v1/predictions/{accepted['prediction']['id']}/segmentation"
            saved = download(client, url, arguments.out / f"{arguments.case_id}{ending}", arguments.retries)
        except GaveUp as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(f"saved {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
