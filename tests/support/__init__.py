"""What test modules share: builders, stand-ins and clients that are not fixtures.

Test modules import from here (and pytest hands them the fixtures of the ``conftest.py``
files); no test module imports another. Fakes worth keeping next to the code they fake live
in the package itself (``telephony.ami.testing``).
"""
