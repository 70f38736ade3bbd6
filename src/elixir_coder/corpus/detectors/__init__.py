"""Built-in Credo and Sobelow detectors (``corpus.checks`` re-exports their entry points)."""
