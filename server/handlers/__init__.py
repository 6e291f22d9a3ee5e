"""Request handlers, one module per resource: ``storage`` (records), ``namespaces``, ``ops``.

A handler is ``handler(app, request) -> Response``; it raises :class:`server.problems.HTTPProblem`
or an engine error for anything but success, and the app turns those into problem documents.
"""
