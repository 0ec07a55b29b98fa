"""The generic adaptation loop (knows methods only through their hooks)."""
