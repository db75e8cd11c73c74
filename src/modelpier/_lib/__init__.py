"""Domain-free helpers (clock, ids, files). Nothing here imports another modelpier part."""
