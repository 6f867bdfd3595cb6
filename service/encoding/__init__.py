"""Text to vectors: the encoders (ONNX int8, sentence-transformers), their caches and the micro-batcher."""
