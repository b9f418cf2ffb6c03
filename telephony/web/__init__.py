"""The HTTP side of the line (aiohttp): the JSON API and the web console.

``routing`` holds the route table (every route with its access policy, registered and
documented in OpenAPI from one list), ``security`` authentication, CSRF and role checks,
``errors`` the mapping of our exceptions to HTTP, ``schemas`` the builders of the JSON
shapes, their registry and validator (each feature declares its own shapes beside its
routes), ``request`` what handlers read and answer, ``context`` the services they use,
``console`` the console's shell, ``server`` the application (the features' routes and schemas
gathered) and its server.
"""
