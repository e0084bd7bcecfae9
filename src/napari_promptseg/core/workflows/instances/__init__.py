"""micro-sam's automatic instance segmentation (AIS) and prompt generation (APG).

micro-sam's microscopy checkpoints (``vit_*_lm``, ``vit_*_em_organelles``) carry an instance
decoder next to SAM: a UNETR head (``decoder_state``) that turns the image embedding into a
foreground map and distances to object centres and boundaries. AIS turns those maps into
instances with a seeded watershed in one pass; APG derives point prompts from them and lets
SAM's mask decoder draw the masks. Both run on the engine's cached embedding, and give the
label images of micro-sam 1.8.14's ``InstanceSegmentationWithDecoder`` and
``AutomaticPromptGenerator`` on the same checkpoint (stacks: ``automatic_3d_segmentation``).

Modules, in the data path's order: :mod:`.checkpoint` (finding the decoder; which modes a
model has), :mod:`.decoder` (the UNETR head), :mod:`.watershed` (maps → labels),
:mod:`.blockwise` (elf's block-wise kernels that APG relies on), :mod:`.ais` (2D and stacks),
:mod:`.merge3d` (planes → 3D objects), :mod:`.apg`, :mod:`.tiles` and :mod:`.apg_tiled`
(planes larger than one embedding, micro-sam's ``Tiled*`` classes), :mod:`.segmenter` (the
front door).
"""

from .ais import InstanceMaps, StackResult, predict_maps, segment_maps, segment_stack
from .apg import APGParams, point_prompts, prompt_generation
from .checkpoint import (
    AIS,
    APG,
    GRID,
    automatic_modes,
    load_instance_decoder,
    no_decoder_message,
)
from .decoder import InstanceDecoder, build_decoder
from .merge3d import merge_planes, offset_planes
from .segmenter import InstanceSegmenter
from .watershed import WatershedParams, seeded_watershed

__all__ = [
    "AIS",
    "APG",
    "GRID",
    "APGParams",
    "InstanceDecoder",
    "InstanceMaps",
    "InstanceSegmenter",
    "StackResult",
    "WatershedParams",
    "automatic_modes",
    "build_decoder",
    "load_instance_decoder",
    "merge_planes",
    "no_decoder_message",
    "offset_planes",
    "point_prompts",
    "predict_maps",
    "prompt_generation",
    "seeded_watershed",
    "segment_maps",
    "segment_stack",
]
