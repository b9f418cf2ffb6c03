"""The HTTP side of the line (aiohttp): the JSON API and the web console.

``routing`` holds the route table (every route with its access policy, registered and
documented in OpenAPI from one list), ``security`` authentication, CSRF and role checks,
``errors`` the mapping of our exceptions to HTTP, ``schemas`` and ``serialize`` the JSON
shapes, ``api`` the handlers, ``console`` the pages and forms (in the same route table),
``server`` the application and its server.
"""
