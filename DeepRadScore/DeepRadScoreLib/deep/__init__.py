"""Deep-CT: the networks (``model``), the trained ensemble (``ensemble``, torch), the cross-fitted
training (``training``, never imported by prediction), Grad-CAM (``gradcam``), the networks as
ONNX graphs (``onnx_export``, at save) and the ensemble through ONNX Runtime without torch
(``onnx_ensemble``: what prediction runs when the bundle has the graphs).
"""
