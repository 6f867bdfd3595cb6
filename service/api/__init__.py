"""The HTTP edge: app factory, engine, thin endpoints, auth, limits, errors and hot reload."""
