"""``python -m telephony`` is the ``siaga112`` command."""

import sys

from telephony.cli import main

sys.exit(main())
