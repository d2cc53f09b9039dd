"""VORTEX training: PyTorch networks, losses, the three fine-tuning stages, and ONNX
export with the manifest that vortexdb loads."""

__version__ = "0.1.0"
