"""Keep triton out of processes where Mesa's LLVM is already loaded.

On Linux, Mesa's OpenGL drivers (llvmpipe, radeonsi) load ``libLLVM`` when napari creates its
canvas. triton (which the CUDA builds of torch pull in on some import paths) carries its own
LLVM; loading it into the same process crashes Python with a segmentation fault. napari
imports this plugin only after its window exists, so the order is exactly the bad one.
SAM inference here never uses triton (it only serves ``torch.compile``), so when libLLVM is
already mapped and triton is not yet imported, triton is made unimportable: torch then
imports cleanly and works as usual.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


def keep_triton_out_if_llvm_loaded() -> bool:
    """Block ``import triton`` if a libLLVM is mapped into this process. True if blocked."""
    if not sys.platform.startswith("linux") or "triton" in sys.modules:
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            loaded = any("libLLVM" in line for line in maps)
    except OSError:
        return False
    if loaded:
        sys.modules["triton"] = None  # import triton → ImportError, which torch handles
        log.debug("libLLVM is loaded (Mesa OpenGL): triton disabled to avoid an LLVM clash")
    return loaded
