"""Files copied verbatim into exports (they never import core)."""
