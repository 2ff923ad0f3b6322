"""Deep-CT: the networks (``model``), the trained ensemble that prediction uses (``ensemble``),
the cross-fitted training (``training``, never imported by prediction) and Grad-CAM (``gradcam``).
"""
