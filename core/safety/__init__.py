"""Making an upload safe to open: the allowlist, the safe unpickler, its state audit, the static scan, the sandbox."""
