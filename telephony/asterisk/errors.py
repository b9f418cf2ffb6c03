"""What goes wrong installing files for a site's Asterisk."""

from __future__ import annotations

from telephony.core.errors import SiagaError


class AsteriskSiteError(SiagaError):
    """The site's Asterisk configuration could not be rendered, or a prompt installed.

    A fault of the files (a template, a secret, a WAV), not of a client: ``500 internal``.
    """

    code = "asterisk_site"
