"""The chaos suite: real worker processes killed, shut down and cut off from their
database while they run jobs, and the rows checked afterwards.

``python -m tests.chaos --help`` runs it from the command line (long form, on a
database of its own); ``tests/runtime/test_chaos.py`` runs a short form in the test suite.
The task the workers run is :func:`tests.chaos.tasks.record`; the run and its
checks are in :mod:`tests.chaos.runner`; the database faults in
:mod:`tests.chaos.faults`.
"""
