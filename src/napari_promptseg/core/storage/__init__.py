"""Files: everything the engine reads from or writes to disk.

* :mod:`.files` — atomic writes (never half a file);
* :mod:`.readers` — images and prompt tables (CLI input);
* :mod:`.export` — label images and objects tables; :mod:`.coco` — COCO JSON with RLE masks;
* :mod:`.store` — embeddings on disk, content-addressed;
* :mod:`.autosave` — crash recovery of the labels being annotated;
* :mod:`.folder`, :mod:`.folder_progress` — folders of images annotated one after another;
* :mod:`.zarr_store` — the embedding store many processes share; :mod:`.ome_zarr` — zarr /
  OME-Zarr in and out; :mod:`.label_output` — label images written plane by plane.

Modules are imported on use (``from napari_promptseg.core.storage.export import ...``), so
reading a tif does not import the COCO encoder.
"""
