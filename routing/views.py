"""Gateway-owned endpoints besides tokens: health and the JSON Web Key Set."""

import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from accounts.tokens import get_token_backend
from routing.matching import route_tables

ASYMMETRIC_PREFIXES = ("RS", "PS", "ES")


@require_GET
def healthz(request):
    """Return 200 with the loaded configuration version once the route table is built, else 503."""
    try:
        table = route_tables.get()
    except Exception:  # noqa: BLE001 - any failure to build the table means not ready
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "config_version": table.version, "routes": len(table.routes)})


@require_GET
def jwks(request):
    """Return the public key set for RS*, PS* and ES* signing; an HS256 gateway publishes no keys."""
    from jwt.algorithms import get_default_algorithms

    options = settings.SIMPLE_JWT
    algorithm = options["ALGORITHM"]
    keys = []
    if algorithm.startswith(ASYMMETRIC_PREFIXES) and options.get("VERIFYING_KEY"):
        implementation = get_default_algorithms()[algorithm]
        public_key = implementation.prepare_key(options["VERIFYING_KEY"])
        jwk = json.loads(implementation.to_jwk(public_key))
        jwk.update({"use": "sig", "alg": algorithm, "kid": get_token_backend().key_id})
        keys.append(jwk)
    response = JsonResponse({"keys": keys})
    response["Cache-Control"] = "public, max-age=300"
    return response
