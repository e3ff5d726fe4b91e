"""Data operations: reading sources into typed Polars frames, and merging them into a
workflow's table (the upload / merge wizard, the table API and scheduled refreshes)."""
