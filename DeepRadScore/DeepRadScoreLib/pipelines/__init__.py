"""The engine's jobs from files to files, each composed of the rooms below: one case
(``case``: what ``predict`` and the Slicer module run), a cohort's features (``cohort``: extract
unless a table is given, then check its settings), training a bundle (``train``), evaluating one
(``evaluate``) and the backbone comparison (``backbones``). Nothing below this room starts an
extraction or a training of its own.
"""
