"""Floor 1, the paper's methods without I/O: models, interpreters, attacks, AID, noise, metrics, stats, paper."""
