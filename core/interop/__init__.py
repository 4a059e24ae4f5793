"""Trained models between nnU-Net v2 and us: import its results folders and export zips, export ours.

`import_nnunet_model(source, destination)` (core.interop.importer) and `export_nnunet_model(model_dir,
out)` (core.interop.exporter) are the front doors; the CLI's `import-nnunet`/`export-nnunet` and the
service's model import call them. Nothing of nnU-Net v2 is imported here: its layouts and file formats
are read and written as data.
"""

from core.interop.archive import ArchiveError
from core.interop.checkpoints import CheckpointRefused
from core.interop.exporter import ExportedModel, ModelExportError, export_nnunet_model
from core.interop.importer import (
    ImportedConfiguration,
    ImportedModel,
    ImportOptions,
    ModelImportError,
    import_nnunet_model,
)
from core.interop.postprocessing import PostprocessingImportError
from core.interop.trainers import ACCEPTED_TRAINERS

__all__ = [
    "ACCEPTED_TRAINERS",
    "ArchiveError",
    "CheckpointRefused",
    "ExportedModel",
    "ImportOptions",
    "ImportedConfiguration",
    "ImportedModel",
    "ModelExportError",
    "ModelImportError",
    "PostprocessingImportError",
    "export_nnunet_model",
    "import_nnunet_model",
]
