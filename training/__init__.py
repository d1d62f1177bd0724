"""Training and evaluation of SRCNN on the 91-image set; see `training.train` and `training.evaluate`."""
