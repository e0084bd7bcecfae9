"""Teaching a model your data: finetuning SAM from annotated planes.

In the order a finetune runs:

* :mod:`.data` — (image plane, labels plane) pairs from the session or from folders,
  checked, split into training and validation;
* :mod:`.targets` — objects on SAM's mask grid; prompts sampled from them (points, noisy
  boxes, corrections in the error region), as in the SAM paper;
* :mod:`.losses` — focal + dice on masks, MSE on the IoU head;
* :mod:`.embeddings` — the base model's own embeddings of the planes ("decoder" mode);
* :mod:`.forward` — differentiable encode / decode, the rounds of simulated prompting;
* :mod:`.validation` — held-out loss and mIoU@1 (the evaluator's one-click protocol);
* :mod:`.settings`, :mod:`.trainer`, :mod:`.progress` — the loop: progress, cancel, early
  stopping, seed;
* :mod:`.output` — the checkpoint and its entry in "my models";
* :mod:`.synthetic` — synthetic fluorescence nuclei and cells (the demo model's data).

The instance decoder (micro-sam's AIS head) trains by its own loop:
:mod:`.instance_targets` (torch_em's distance targets and loss), :mod:`.instance_training`
(the loop, encoder frozen or trained too), :mod:`.instance_validation` (matched IoU, F1).
"""

from .data import (
    MIN_OBJECTS,
    TrainingDataError,
    TrainingPlane,
    make_plane,
    planes_from_folder,
    planes_from_stack,
)
from .output import SavedModel, check_model_name, save_finetuned
from .settings import MODES, FinetuneError, FinetuneSettings
from .trainer import FinetuneProgress, FinetuneResult, finetune, iter_finetune

__all__ = [
    "MIN_OBJECTS",
    "MODES",
    "FinetuneError",
    "FinetuneProgress",
    "FinetuneResult",
    "FinetuneSettings",
    "SavedModel",
    "TrainingDataError",
    "TrainingPlane",
    "check_model_name",
    "finetune",
    "iter_finetune",
    "make_plane",
    "planes_from_folder",
    "planes_from_stack",
    "save_finetuned",
]
