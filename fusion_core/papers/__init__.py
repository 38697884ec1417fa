"""Per-paper experiment drivers and each paper's reported numbers (``<paper>/reported.csv``, as data)."""
