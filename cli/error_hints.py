"""What to do about a user's mistake: the line `nnsvc` prints under the error.

An error may carry its own `hint` (a failed job's, the demo's); otherwise the most specific entry of
`HINTS` for its class applies, and failing that the command's `--help`. Classes are named by their
qualified names rather than imported: several live in modules that load torch, which the CLI loads
only for the commands that compute (tests/cli/test_startup.py resolves every name).
"""

from __future__ import annotations

HINTS: dict[str, str] = {
    "core.dataset.DatasetError": (
        "fix what is named above; `nnsvc verify RAW_DIR` lists every problem of a dataset at once"
    ),
    "core.io.ImageReadError": (
        "check that the file is a readable image (.nii.gz, .nii, .nrrd, .mha, .png, .tif)"
    ),
    "core.plans.PlansError": "pass the output folder of `nnsvc plan` (it holds plans.json)",
    "core.plans.UnknownConfigurationError": (
        "name a configuration the plans hold, or plan it with `nnsvc plan -c NAME`"
    ),
    "core.training.options.TrainingOptionsError": "`nnsvc train --help` gives the allowed values",
    "core.training.checkpoints.CheckpointError": (
        "check the model folder; --resume needs the fold's checkpoint_latest.pth"
    ),
    "core.training.cascade.PreviousStageError": "first train every 3d_lowres fold into the same MODEL_DIR",
    "core.selection.SelectionError": (
        "train the folds with their validation first (`nnsvc train` without --no-validation)"
    ),
    "core.evaluation.EvaluationError": (
        "predictions and references need the same file names and the same geometry"
    ),
    "core.parallel.WorkerDiedError": (
        "a worker process died, usually for lack of memory: rerun with fewer workers (-j 1)"
    ),
    "builtins.FileNotFoundError": "check the path named above",
    "builtins.PermissionError": "check the permissions of the path named above",
    "service.migrations.DatabaseUnavailableError": (
        "start the database, or point NNSVC_DATABASE_URL (or --database-url) at one"
    ),
    "service.migrations.SchemaOutOfDateError": "run `nnsvc migrate` with the same settings, then try again",
    "service.keys.KeyNotFoundError": "`nnsvc keys list` shows every key's id",
    "cli.service_commands.SettingsError": (
        "fix the NNSVC_ settings named above (environment or .env); the README lists them all"
    ),
}


def hint_for(error: BaseException, command: str) -> str:
    own = getattr(error, "hint", None)
    if isinstance(own, str) and own:
        return own
    for kind in type(error).__mro__:
        hint = HINTS.get(f"{kind.__module__}.{kind.__qualname__}")
        if hint is not None:
            return hint
    return f"`nnsvc {command} --help` explains every option"
