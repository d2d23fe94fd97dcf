"""What every algorithm shares to train: the loop and its hooks, the Gluon task base, devices,
optimizers, export and the runner. MXNet is imported only by the modules that need it."""
