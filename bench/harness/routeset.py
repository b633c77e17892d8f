"""The benchmark's gateway configuration: three measured routes plus generated filler routes.

The measured routes are the same in every route table, so that a table of 10,
1,000 or 10,000 routes changes only what the matcher has to search:

- ``api``: ``/api/**``, any method, for callers with the role ``reader`` or ``admin``;
- ``public``: ``/public/**``, GET, no token needed;
- ``ops``: ``/ops/**``, only for the role ``admin``, so a ``reader`` token gets 403.

Filler routes mix the shapes a real table holds: a prefix with ``**``, patterns with
a ``*`` segment, a route bound to a host name, and a route with a role rule.
"""

MEASURED_ROUTE_COUNT = 3
FILLERS_PER_UPSTREAM = 100
UPSTREAM_NAME = "bench-upstream"
ROLES = ("reader", "admin")


def measured_routes():
    """Return the routes that the load cases request."""
    return [
        {"name": "api", "paths": ["/api/**"], "upstream": UPSTREAM_NAME, "roles": list(ROLES)},
        {"name": "public", "paths": ["/public/**"], "methods": ["GET"], "upstream": UPSTREAM_NAME, "auth": "public"},
        {"name": "ops", "paths": ["/ops/**"], "upstream": UPSTREAM_NAME, "roles": ["admin"]},
    ]


def filler_upstream_name(index):
    return f"svc-pool-{index // FILLERS_PER_UPSTREAM:03d}"


def filler_route(index):
    """Return filler route number ``index``; its shape cycles through ten kinds."""
    prefix = f"/svc-{index:05d}"
    route = {"name": f"svc-{index:05d}", "upstream": filler_upstream_name(index), "roles": ["reader"]}
    kind = index % 10
    if kind in (6, 7):
        route["paths"] = [f"{prefix}/v1/*/items", f"{prefix}/v1/*/items/**"]
        route["methods"] = ["GET", "POST"]
    elif kind == 8:
        route["paths"] = [f"{prefix}/**"]
        route["hosts"] = [f"svc-{index:05d}.bench.test"]
    elif kind == 9:
        route["paths"] = [f"{prefix}/**"]
        route["rules"] = [{"methods": ["DELETE"], "roles": ["admin"]}]
    else:
        route["paths"] = [f"{prefix}/**"]
    return route


def configuration(route_count, upstream_url):
    """Return the applyconfig document with ``route_count`` routes, all sent to ``upstream_url``."""
    if route_count < MEASURED_ROUTE_COUNT:
        raise ValueError(f"route_count={route_count} is below the {MEASURED_ROUTE_COUNT} measured routes.")
    fillers = [filler_route(index) for index in range(route_count - MEASURED_ROUTE_COUNT)]
    pool_names = sorted({route["upstream"] for route in fillers})
    upstreams = [{"name": UPSTREAM_NAME, "targets": [{"url": upstream_url}]}]
    upstreams += [{"name": name, "targets": [{"url": upstream_url}]} for name in pool_names]
    return {
        "upstreams": upstreams,
        "roles": [{"name": role} for role in ROLES],
        "routes": measured_routes() + fillers,
    }
