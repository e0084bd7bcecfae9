"""Temporary device check (not committed): vit_b finetune modes on CUDA, a few steps."""
import time, torch
from segment_anything import build_sam_vit_b
from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.workflows.finetune import FinetuneSettings, finetune, make_plane
from napari_promptseg.core.workflows.finetune.synthetic import synthetic_cells
planes = [make_plane(s.image, s.labels, f"s{i}") for i, s in enumerate(synthetic_cells(i, (256, 320)) for i in range(4))]
for mode in ("decoder", "full"):
    torch.manual_seed(0)
    seg = PromptSegmenter(build_sam_vit_b().cuda().eval(), "vit_b-random")
    t = time.perf_counter()
    r = finetune(seg, planes, FinetuneSettings(mode=mode, max_steps=6, eval_every=3, planes_per_step=2))
    print(mode, "steps", r.metadata["steps"], "s", round(time.perf_counter() - t, 1), r.metadata["validation"], flush=True)
    torch.cuda.synchronize()
    print("max mem GiB", torch.cuda.max_memory_allocated() / 2**30, flush=True)
