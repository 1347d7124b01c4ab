"""Privacy: consent, access/export, erasure, jurisdiction and notices."""
