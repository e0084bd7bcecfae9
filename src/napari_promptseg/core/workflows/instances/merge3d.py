"""Per-plane instances → 3D objects: micro-sam's ``merge_instance_segmentation_3d``.

Objects of neighbouring planes are linked by their overlap (the fraction of the lower plane's
object covered by the upper one's), the links become multicut costs, and bioimage-cpp's
multicut decomposition (Kernighan-Lin inside) decides which to merge: micro-sam 1.8.14's
``automatic_3d_segmentation`` step by step (``with_background=True``, no gap closing, no
minimal z extent), including its quirk of passing ``1 - costs`` to the solver.
"""

from __future__ import annotations

import bioimage_cpp as bic
import numpy as np


def offset_planes(planes: list[np.ndarray]) -> np.ndarray:
    """Stack per-plane labels (each 1..n_z) with ids continuing across planes.

    Parameters
    ----------
    planes : list of numpy.ndarray
        (H, W) labels, one per plane (micro-sam's ``_segment_slices``).

    Returns
    -------
    numpy.ndarray
        (Z, H, W) uint32: plane z's objects shifted past every earlier plane's ids.
    """
    stack = np.zeros((len(planes), *planes[0].shape), dtype=np.uint32)
    offset = 0
    for z, seg in enumerate(planes):
        seg = seg.copy()
        top = int(seg.max())
        if top == 0:
            continue
        seg[seg != 0] += offset
        offset += top
        stack[z] = seg
    return stack


def _overlap_edges(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, 2) uint64 id pairs of overlapping objects in planes z, z+1 and their fractions."""
    pairs: list[tuple[int, int]] = []
    scores: list[float] = []
    for z in range(stack.shape[0] - 1):
        overlap = bic.utils.segmentation_overlap(stack[z], stack[z + 1])
        for node in np.unique(stack[z])[1:]:
            found = overlap.overlaps_for_label_a(node, normalize=True)
            for target, fraction in zip(found["label"], found["fraction"], strict=True):
                if target != 0:
                    pairs.append((node, target))
                    scores.append(fraction)
    return np.array(pairs, dtype=np.uint64).reshape(-1, 2), np.array(scores)


def merge_planes(stack: np.ndarray, beta: float = 0.5) -> np.ndarray:
    """Merge consecutively labelled planes into 3D objects.

    Parameters
    ----------
    stack : numpy.ndarray
        (Z, H, W) labels from :func:`offset_planes`.
    beta : float
        micro-sam's boundary bias (0.5: its default, which cancels out).

    Returns
    -------
    numpy.ndarray
        (Z, H, W) labels, one id per merged object (ids are the multicut's node labels,
        not consecutive, as micro-sam returns them).
    """
    uv_ids, overlaps = _overlap_edges(stack)
    if len(uv_ids) == 0:
        return stack
    graph = bic.graph.UndirectedGraph(int(stack.max() + 1))
    graph.insert_edges(uv_ids)
    # elf.segmentation.multicut.compute_edge_costs(overlaps): negative log likelihood
    p_min = 0.001
    p_max = 1.0 - p_min
    costs = (p_max - p_min) * overlaps + p_min
    costs = np.log((1.0 - costs) / costs) + np.log((1.0 - beta) / beta)
    costs[(uv_ids == 0).any(axis=1)] = -8.0
    objective = bic.graph.multicut.MulticutObjective(graph, 1.0 - costs)
    solver = bic.graph.multicut.MulticutDecomposer(
        sub_solver=bic.graph.multicut.KernighanLinMulticut(),
        fallthrough_solver=bic.graph.multicut.KernighanLinMulticut(),
        number_of_threads=1,
    )
    node_labels = solver.optimize(objective)
    return node_labels[stack]
