"""The process: serving until a signal, draining, and ``--workers``.

serve.py    the app and admin servers in one event loop; SIGTERM → not ready → drain
workers.py  ``serve --workers N``: N processes on one port, the parent serving admin
ports.py    listening addresses: bound up front, or one line saying why not
"""
