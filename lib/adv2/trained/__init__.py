"""Floor 2, what is loaded from disk: datasets, trained models (declarations, store, checkpoints)."""
