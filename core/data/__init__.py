"""Tables: reading uploads, aligning them to a model, the row table and its search, metrics, the built-in demos."""
