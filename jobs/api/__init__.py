"""The HTTP API and the request path: views, OpenAPI document, authentication (sessions, API tokens, the
login throttle), middleware, error pages and the metrics endpoint.

Imports: every wing below (``jobs.ops`` and down); nothing imports it except the faces at the top of ``jobs/``
(``jobs.urls``, ``jobs.public``) and the project's settings.
"""
