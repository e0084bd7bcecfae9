"""Following objects through z and t: SAM 2.1 memory propagation, lineages, CTC and GEFF.

:mod:`.memory` runs SAM 2.1's video memory on cached embeddings; :mod:`.lineage` is the
lineage graph as plain data; :mod:`.edits` edits tracks on label stacks; :mod:`.ctc` and
:mod:`.geff_io` write the Cell Tracking Challenge format and GEFF graphs.
"""
