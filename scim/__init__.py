"""The HTTP front: SCIM 2.0 (RFC 7643/7644) provisioning and admin view, the admin API, health.

It parses requests, calls gateway services and renders their answers; it never writes to the
store itself and never talks to the LDAP front.
"""
