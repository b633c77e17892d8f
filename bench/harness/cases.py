"""The subjects and the load cases, and which subject runs which case."""

from dataclasses import dataclass, field

from harness.load import Request

MIB = 1024 * 1024


@dataclass(frozen=True)
class Subject:
    """One thing under load: a server name from common.SERVER_NAMES and how the report labels it."""

    key: str
    server: str
    label: str
    algorithm: str = "HS256"


SUBJECTS = {
    subject.key: subject
    for subject in (
        Subject("direct", "upstream", "upstream directly (the limit)"),
        Subject("nginx", "nginx", "nginx reverse proxy, no token check"),
        Subject("haproxy", "haproxy", "HAProxy 2.6 + jwt_verify HS256 + role check"),
        Subject("peer", "peer", "django-revproxy + simplejwt stateless check"),
        Subject("floor", "floor", "gunicorn gthread + http.client, forwarding with no checks (the floor)"),
        Subject("floor-gevent", "floor-gevent", "gunicorn gevent + http.client, forwarding with no checks"),
        Subject("jwtgate", "jwtgate", "jwtgate, 10 routes"),
        Subject("jwtgate-rs256", "jwtgate-rs256", "jwtgate, 10 routes, RS256 token", algorithm="RS256"),
        Subject("jwtgate-1k", "jwtgate-1k", "jwtgate, 1,000 routes"),
        Subject("jwtgate-10k", "jwtgate-10k", "jwtgate, 10,000 routes"),
    )
}

# Reasons that a subject does not run a case. The report shows each as a mark and explains it in a legend.
NO_TOKEN_CHECK = "no token check"
TIME_BUDGET = "left out for time"
JWTGATE_VARIANT = "jwtgate variant"


@dataclass(frozen=True)
class Case:
    """A load case: the request, the status every response must have, and its subjects.

    ``subjects`` run by default, ``extra_subjects`` only with BENCH_ALL_SUBJECTS=1;
    every other subject is listed in ``skipped`` with the reason.
    """

    key: str
    title: str
    method: str
    path: str
    token: str | None  # "valid", "invalid" or None
    expected_status: int
    subjects: tuple
    extra_subjects: tuple = ()
    body_bytes: int = 0
    connections: int = 32
    threads: int = 2
    skipped: dict = field(default_factory=dict)

    def request(self, subject, tokens):
        """Return the Request that ``subject`` gets in this case; tokens maps "HS256", "RS256" and "invalid"."""
        if self.token is None:
            token = None
        elif self.token == "invalid":
            token = tokens["invalid"]
        else:
            token = tokens[SUBJECTS[subject].algorithm]
        return Request(self.method, self.path, token, self.body_bytes)

    def scheduled(self, all_subjects):
        return self.subjects + (self.extra_subjects if all_subjects else ())

    def reason_skipped(self, subject, all_subjects):
        """Return why ``subject`` does not run this case, or None when it runs."""
        if subject in self.scheduled(all_subjects):
            return None
        if subject in self.extra_subjects:
            return TIME_BUDGET
        return self.skipped.get(subject, JWTGATE_VARIANT)


VARIANTS = ("jwtgate-rs256", "jwtgate-1k", "jwtgate-10k")

CASES = (
    Case(
        "small",
        "Small GET with a valid token",
        "GET",
        "/api/small",
        "valid",
        200,
        subjects=("direct", "nginx", "haproxy", "peer", "floor", "floor-gevent", "jwtgate", *VARIANTS),
    ),
    Case(
        "big",
        "GET with a 64 KiB response",
        "GET",
        "/api/big",
        "valid",
        200,
        subjects=("direct", "haproxy", "peer", "jwtgate"),
        extra_subjects=("nginx", "floor", "floor-gevent"),
    ),
    Case(
        "upload",
        "POST with a 1 MiB body",
        "POST",
        "/api/upload",
        "valid",
        200,
        body_bytes=MIB,
        subjects=("haproxy", "peer", "jwtgate"),
        extra_subjects=("direct", "nginx", "floor", "floor-gevent"),
    ),
    Case(
        "public",
        "Small GET on a public route, no token",
        "GET",
        "/public/small",
        None,
        200,
        subjects=("jwtgate",),
        extra_subjects=("direct", "nginx", "haproxy", "peer", "floor", "floor-gevent"),
    ),
    Case(
        "denied",
        "Denied: valid token without the route's role (403)",
        "GET",
        "/ops/small",
        "valid",
        403,
        subjects=("jwtgate",),
        extra_subjects=("haproxy", "peer"),
        skipped={"direct": NO_TOKEN_CHECK, "nginx": NO_TOKEN_CHECK, "floor": NO_TOKEN_CHECK,
                 "floor-gevent": NO_TOKEN_CHECK},
    ),
    Case(
        "invalid",
        "Invalid token: bad signature (401)",
        "GET",
        "/api/small",
        "invalid",
        401,
        subjects=("jwtgate",),
        extra_subjects=("haproxy", "peer"),
        skipped={"direct": NO_TOKEN_CHECK, "nginx": NO_TOKEN_CHECK, "floor": NO_TOKEN_CHECK,
                 "floor-gevent": NO_TOKEN_CHECK},
    ),
    Case(
        "one_connection",
        "Small GET at one connection (wrk -c1)",
        "GET",
        "/api/small",
        "valid",
        200,
        connections=1,
        threads=1,
        subjects=("direct", "jwtgate"),
        extra_subjects=("nginx", "haproxy", "peer", "floor", "floor-gevent"),
    ),
)
