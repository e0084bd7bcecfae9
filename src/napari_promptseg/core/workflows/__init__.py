"""Workflows built on the engine: more than one prompt, plane or tile at a time.

* :mod:`.stack` — the planes of a stack, precomputing their embeddings;
* :mod:`.propagation` — an object extended plane by plane through z or t;
* :mod:`.tiling` — planes too large for one embedding, by tiles;
* :mod:`.everything` — automatic instance segmentation with a grid of points (SAM's AMG).

Modules are imported on use.
"""
