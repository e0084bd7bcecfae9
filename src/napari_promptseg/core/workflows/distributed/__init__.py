"""Past one machine: the batch commands' work split per image, plane or tile, run in this
process or on a Dask cluster (``--scheduler local:N`` or ``tcp://...``).

* :mod:`.scheduler` — ``--scheduler`` parsed; the Dask client (and a local cluster) opened;
* :mod:`.recipe` — how a worker builds the engine, once, and keeps it;
* :mod:`.plugin` — the Dask worker plugin that does so on every worker (imports distributed);
* :mod:`.runner` — :func:`run_items` / :func:`iter_items`: items here or as Dask tasks,
  results in order or as they finish;
* :mod:`.sources` — an image file (tif, zarr, OME-Zarr) as planes a worker opens lazily;
* :mod:`.tasks` — the units of work of ``embed``, ``everything`` and ``segment`` (by image,
  plane and tile);
* :mod:`.assemble` — results, in the order they arrive, into the output files;
* :mod:`.quiet` — preloaded by a local cluster's workers: Ctrl-C is the command's to handle.

See docs/scale.md. Modules are imported on use; nothing here imports ``distributed`` until a
cluster is asked for.
"""
