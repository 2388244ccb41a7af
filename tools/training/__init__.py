"""Offline training scripts for the shipped classifiers (need the ``train`` extra:
scikit-learn, skl2onnx). Nothing here is imported by the running pipeline."""
