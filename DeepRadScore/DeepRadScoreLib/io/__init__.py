"""Reading what a user gives us: CT images, tumour masks (NIfTI, NRRD, MHA, DICOM series, Slicer
``.seg.nrrd``, DICOM RTSTRUCT and SEG) and cohort manifests, each either read correctly onto the
CT's grid or refused with an :class:`~DeepRadScoreLib.errors.InputError` that names the file.

``grid`` (voxel-grid rules) and ``integrity`` (does a file hold all the voxel data its header
promises?) are the lowest layer; ``dicom`` and ``images`` build on them; ``manifest`` reads the
cohort CSV.
"""
