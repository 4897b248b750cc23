"""The edge runtime: frames in, Face records out, with no TensorFlow installed."""
