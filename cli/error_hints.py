"""What to do about a user's mistake: the line `nnsvc` prints under the error.

An error may carry its own `hint` (a failed job's, the demo's); otherwise the most specific entry of
`HINTS` for its class applies, and failing that the command's `--help`.
"""

from __future__ import annotations

from cli.service_commands import SettingsError
from core.dataset import DatasetError
from core.evaluation import EvaluationError
from core.io import ImageReadError
from core.parallel import WorkerDiedError
from core.plans import PlansError, UnknownConfigurationError
from core.selection import SelectionError
from core.training.cascade import PreviousStageError
from core.training.checkpoints import CheckpointError
from core.training.options import TrainingOptionsError
from service.keys import KeyNotFoundError
from service.migrations import DatabaseUnavailableError, SchemaOutOfDateError

HINTS: dict[type[BaseException], str] = {
    DatasetError: "fix what is named above; `nnsvc verify RAW_DIR` lists every problem of a dataset at once",
    ImageReadError: "check that the file is a readable image (.nii.gz, .nii, .nrrd, .mha, .png, .tif)",
    PlansError: "pass the output folder of `nnsvc plan` (it holds plans.json)",
    UnknownConfigurationError: "name a configuration the plans hold, or plan it with `nnsvc plan -c NAME`",
    TrainingOptionsError: "`nnsvc train --help` gives the allowed values",
    CheckpointError: "check the model folder; --resume needs the fold's checkpoint_latest.pth",
    PreviousStageError: "first train every 3d_lowres fold into the same MODEL_DIR",
    SelectionError: "train the folds with their validation first (`nnsvc train` without --no-validation)",
    EvaluationError: "predictions and references need the same file names and the same geometry",
    WorkerDiedError: "a worker process died, usually for lack of memory: rerun with fewer workers (-j 1)",
    FileNotFoundError: "check the path named above",
    PermissionError: "check the permissions of the path named above",
    DatabaseUnavailableError: "start the database, or point NNSVC_DATABASE_URL (or --database-url) at one",
    SchemaOutOfDateError: "run `nnsvc migrate` with the same settings, then try again",
    KeyNotFoundError: "`nnsvc keys list` shows every key's id",
    SettingsError: "fix the NNSVC_ settings named above (environment or .env); the README lists them all",
}


def hint_for(error: BaseException, command: str) -> str:
    own = getattr(error, "hint", None)
    if isinstance(own, str) and own:
        return own
    for kind in type(error).__mro__:
        if kind in HINTS:
            return HINTS[kind]
    return f"`nnsvc {command} --help` explains every option"
