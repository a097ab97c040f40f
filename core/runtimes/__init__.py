"""Separate Python runtimes (Azure AutoML): installing them, and the worker that runs inside one."""
