"""The ``modellens`` command."""
