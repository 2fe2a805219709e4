"""Sans-I/O protocol logic: build requests and read responses, never touch a socket.

Clients (targets/) and the server (server/) share these modules, so both sides parse a header
the same way.
"""
