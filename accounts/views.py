"""Token endpoints under /auth/ and the problem+json handler for their errors."""

import logging

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts import serializers
from routing.headers import client_address
from routing.problems import problem_response

logger = logging.getLogger(__name__)


def problem_exception_handler(exc, context):
    """Turn a DRF exception into an RFC 9457 problem+json response with the request id."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    request = context["request"]
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict) and "detail" in detail:
        message = str(detail["detail"])
    elif isinstance(detail, dict):
        fields = "; ".join(f"{field}: {' '.join(str(item) for item in value)}" for field, value in detail.items())
        message = f"Invalid request: {fields}"
    elif isinstance(detail, list):
        message = " ".join(str(item) for item in detail)
    else:
        message = str(detail) if detail is not None else "The request failed."
    code = exc.get_codes() if hasattr(exc, "get_codes") else None
    if not isinstance(code, str):
        code = getattr(exc, "default_code", None)
    headers = {name: value for name, value in response.items() if name in {"WWW-Authenticate", "Retry-After", "Allow"}}
    request_id = getattr(request, "request_id", "-")
    client_ip, _trusted = client_address(request)
    # The one line for a rejected token request; django.request logs only 5xx.
    logger.warning(
        "token_request_rejected request_id=%s path=%s status=%s code=%s client=%s",
        request_id, request.path, response.status_code, code, client_ip,
    )
    return problem_response(response.status_code, message, request_id, code=code, headers=headers)


class TokenView(APIView):
    """Run one token serializer on a POST and return its data, never cached."""

    authentication_classes = []
    permission_classes = []
    serializer_class = None
    success_status = status.HTTP_200_OK

    def get_authenticate_header(self, request):
        # Without this DRF turns a 401 into a 403 for views without authenticators.
        return 'Bearer realm="jwtgate"'

    def post(self, request):
        serializer = self.serializer_class(data=request.data, context={"request": request})
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        response = Response(serializer.validated_data, status=self.success_status)
        response["Cache-Control"] = "no-store"
        return response


class TokenObtainView(TokenView):
    serializer_class = serializers.TokenObtainSerializer


class TokenRefreshView(TokenView):
    serializer_class = serializers.TokenRefreshSerializer


class TokenVerifyView(TokenView):
    serializer_class = serializers.TokenVerifySerializer


class TokenRevokeView(TokenView):
    serializer_class = serializers.TokenRevokeSerializer
