"""The LDAP front (RFC 4511): what RADIUS servers and SSO agents bind to and search.

It translates LDAP operations into calls of gateway services and nothing more; it never writes
to the store itself and never talks to the HTTP front.
"""
