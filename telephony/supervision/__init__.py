"""A supervisor listening in on an operator's live call: listen, whisper (the operator hears
the supervisor, the caller does not) or barge (both hear them).

``model`` holds the modes and the AMI ``Originate`` that rings the supervisor's phone into
Asterisk's ``ChanSpy`` on exactly the operator's channel of that call (pure); ``service``
checks who may, finds the live channel, writes the audit entry and then sends the action;
``http`` is the route the wallboard posts to.
"""
