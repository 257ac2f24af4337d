"""Tests of the deployment recipes (docs/deploy/ and the Procfile, shown in docs/deployment.rst)."""
