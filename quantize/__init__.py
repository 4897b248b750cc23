"""Keras model folder -> self-describing TFLite (int8, float16, dynamic-range or float32)."""
