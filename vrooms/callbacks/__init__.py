"""Callbacks to apps (CloudEvents to a ``callbackUri``, signed), shared by Call Automation and
recording: the writer and its subscriptions (``writer``), the ``resultInformation`` codes
(``results``), ids that name their room (``ids``) and the request fields both parse
(``fields``). Below both: neither imports the other through it.
"""
