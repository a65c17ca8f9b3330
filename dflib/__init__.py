"""dflib: deepfake video detection (face crops -> CNN per frame -> LSTM over time)."""
__version__ = "0.1.0"
