"""The site installation of Asterisk: where it keeps its files, its rendered configuration
and the line's prompts. A real site and the development lab (``telephony/lab``) both use it."""
