"""The fence: every use of aiohttp's private API lives in this package, and only here.

aiohttp is pinned to one minor series (pyproject.toml); ``tests/test_aio_canary.py``
checks that each name below still exists with the shape this code relies on, so an
upgrade fails there, in one place, with the name. ``tests/test_architecture.py`` fails
when a private aiohttp name is used anywhere else. What each module needs, and why:

server.py (the HTTP edge, proxy/server/ uses it)
    ``web_protocol.RequestHandler`` subclassed: its parser state (``_messages``,
    ``_request_in_progress``, ``_request_count``, ``_reading_paused``) tells when a request
    head begins and ends, for the head deadline (slowloris); ``_parser`` is swapped for
    ``http_parser.HttpRequestParserPy`` (with ``_read_bufsize``,
    ``_max_msg_queue_size``) on a connection whose method llhttp does not know;
    ``handle_error`` turns parser refusals (``http_exceptions.LineTooLong``,
    ``HttpProcessingError``) into envelopes; ``finish_response`` writes a finished body at
    once (writer.py), checking ``_upgraded``. ``web.AppRunner._make_server`` is overridden,
    reading ``web.Server``'s ``_loop`` and ``_kwargs``, to serve through that handler;
    ``AppHandler`` sets ``request._match_info`` (a ``web_urldispatcher
    .UrlMappingMatchInfo``) to skip the router. No public API offers any of these.
writer.py (answers in one write: about 15 µs of a request in the profile)
    ``http_writer._serialize_headers`` (C), ``StreamWriter._write``,
    ``BaseRequest._prepare_hook`` (``on_response_prepare``) and ``_finish``, and the
    response state ``write_eof`` leaves (``_eof_sent``, ``_body_length``,
    ``_keep_alive``; ``_cookies`` to skip an empty jar).
client.py (the upstream pool's protocol: aiohttp's client without ClientSession, whose
    request machinery was the largest cost of a request in the profile)
    ``client_proto.ResponseHandler`` subclassed (its ``data_received`` bounded to the
    answer), ``BaseProtocol._drain_helper``, ``http_writer._serialize_headers`` (with
    aiohttp's header-injection check), ``http_parser.RawResponseMessage`` and
    ``http_exceptions.HttpProcessingError``.
testing.py (tests only)
    ``test_utils.TestServer._make_runner`` overridden to run the app on the guarded
    runner; ``base_protocol.BaseProtocol`` under a body stream.

Moving the pin: README "Moving the aiohttp pin".
"""
