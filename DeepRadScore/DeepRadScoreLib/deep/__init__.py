"""Deep-CT: a torchvision backbone whose head is two Xavier-initialised FC layers, fed the 160 x 160
deep-ROI patch; its k penultimate activations are the deep features, cross-fitted so that no case's
features come from a network that saw its label. Grad-CAM explains it.
"""
