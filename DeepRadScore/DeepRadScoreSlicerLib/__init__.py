"""Slicer-side helpers of the DeepRadScore module: MRML <-> SimpleITK, scene outputs, and the
background engine process. May import slicer and vtk, never qt, so the Logic stays usable from
the Python console and under headless ``slicer-core``; the engine (DeepRadScoreLib) imports
none of them.
"""
