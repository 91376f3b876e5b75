"""What the tests share besides fixtures (those are in tests/conftest.py): synthetic archives, the
project's commands in a subprocess, a store's runs read back, servers, small models and studies, and
the local cluster (cluster.py)."""
