"""Model uploads in the server: format detection, zips, and load_model (a worker handle plus plain facts)."""
