"""The model worker process itself: ``python -m core.worker.main`` and the operations it answers."""
