"""Slicer-side parts of the DeepRadScore module: the GUI's run state and decisions (controller),
the Logic, MRML <-> SimpleITK, scene outputs, what a Run installs, and the background engine
process with its typed request. May import slicer and vtk, never qt, so the controller and the
Logic run under headless ``slicer-core`` (the tests) and from the Python console; the engine
(DeepRadScoreLib) imports none of them.
"""
