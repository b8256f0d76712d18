"""Sub-commands of the ``cnnkit`` command line, one module each (see :mod:`cnnkit.cli`)."""
