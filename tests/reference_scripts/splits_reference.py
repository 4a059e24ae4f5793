"""Reference: nnU-Net v2's own `do_split`. Usage: splits_reference.py CASE_LISTS_JSON FOLDS.

CASE_LISTS_JSON is a JSON list of case-identifier lists; FOLDS a comma-separated list of folds
(integers or `all`). For each case list, prints the `splits_final.json` that nnU-Net v2 writes and the
(train, val) that `nnUNetTrainer.do_split` returns for each fold, as one JSON line. The trainer method
runs unbound on a stand-in object that supplies only the attributes it reads, so no dataset, plans or
network are needed. Runs only in the reference environment.
"""

import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace


def stand_in_dataset_class(cases: list[str]) -> type:
    class StandInDataset:
        def __init__(self, folder, identifiers=None, folder_with_segs_from_previous_stage=None):
            self.identifiers = list(cases)

        @staticmethod
        def get_identifiers(folder):
            return list(cases)

    return StandInDataset


def splits_for(cases: list[str], folds: list[str]) -> dict:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    with tempfile.TemporaryDirectory() as scratch:
        trainer = SimpleNamespace(
            dataset_class=stand_in_dataset_class(cases),
            preprocessed_dataset_folder=scratch,
            preprocessed_dataset_folder_base=scratch,
            folder_with_segs_from_previous_stage=None,
            print_to_log_file=lambda *args, **kwargs: None,
        )
        per_fold = {}
        for fold in folds:
            trainer.fold = fold if fold == "all" else int(fold)
            train, val = nnUNetTrainer.do_split(trainer)
            per_fold[fold] = {"train": [str(c) for c in train], "val": [str(c) for c in val]}
        splits_final = json.loads((Path(scratch) / "splits_final.json").read_text())
    return {"splits_final": splits_final, "folds": per_fold}


def main() -> None:
    case_lists = json.loads(sys.argv[1])
    folds = sys.argv[2].split(",")
    print(json.dumps([splits_for(cases, folds) for cases in case_lists]))


if __name__ == "__main__":
    main()
