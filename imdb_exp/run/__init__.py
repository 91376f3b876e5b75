"""One job's story: train, what follows the fit, which earlier run it continues."""
