"""Floor 4, the book: command line, runs, sweeps, publishing, run box, claims page."""
