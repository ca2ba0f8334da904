"""Search: names and extracted text in the database's own full-text index (issue 26)."""
