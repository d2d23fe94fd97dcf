"""Multi-host training over MXNet's parameter server: the launch plan, the launchers' control link,
the role processes, the supervisor's decisions and the worker."""
