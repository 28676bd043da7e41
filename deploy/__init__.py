"""The deploy path: trained weights exported to ONNX, served by ONNX Runtime (Python or Node)."""
