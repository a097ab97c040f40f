"""Explaining a whole table of any size on Dask, and finding finished runs again."""
