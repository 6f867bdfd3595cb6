"""The built index: FAISS vectors, manifest and fingerprint, and the models fitted at build time."""
