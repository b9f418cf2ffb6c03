"""The web console: server-rendered pages in Bahasa Indonesia with a small script, served
beside the JSON API from the same route table (``pages``), rendered with every value escaped
(``render``)."""
