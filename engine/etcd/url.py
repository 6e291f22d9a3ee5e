"""``etcd://`` store URLs: which cluster members, which store prefix, the cluster's limits. A pure function.

``etcd://h1:2379,h2:2379,h3:2379/PREFIX`` names a store at ``PREFIX`` (``a``, ``team/store-1``: the rules of
:func:`engine.etcd.layout.check_prefix`) on the cluster whose client URLs are ``http://h1:2379``, ... Each
member is ``host``, ``host:port`` or ``[ipv6]:port``; the port defaults to etcd's client port 2379. The
members are the ones the client fails over between, so name every member (or at least a quorum's worth).

The query, if any, tells the store the cluster's limits (:mod:`engine.etcd.limits`): ``max_txn_ops``
(etcd's ``--max-txn-ops``) and ``max_request_bytes`` (``--max-request-bytes``), e.g.
``etcd://h1:2379,h2:2379/strata?max_txn_ops=1024&max_request_bytes=10485760``; without one, etcd's
defaults. An unknown parameter, a bad number or one below what a store needs is refused, and a fragment
always is: a typo there must not be silently ignored.

Every mistake is ``INVALID_PARAMETERS`` (``parameter="path"``) with a message that says what is wrong
and shows the form; nothing is contacted before the URL checks out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import errors
from .layout import check_prefix
from .limits import EtcdLimits

SCHEME = "etcd://"
DEFAULT_PORT = 2379
_FORM = "etcd://HOST:PORT,HOST:PORT,.../PREFIX"
_QUERY_FORM = _FORM + "?max_txn_ops=N&max_request_bytes=N (either or both)"
_MEMBER = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[^:]*))?")


def is_etcd_url(path: object) -> bool:
    """Whether ``path`` (what :meth:`engine.Store.open` was given) names a store on etcd."""
    return isinstance(path, str) and path.startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class EtcdUrl:
    """A parsed store URL: the members' client URLs (``http://host:port``), the store prefix and the
    cluster's limits the query gave (etcd's defaults without one)."""

    endpoints: tuple[str, ...]
    prefix: str
    limits: EtcdLimits = field(default_factory=EtcdLimits)

    @classmethod
    def parse(cls, url: str) -> EtcdUrl:
        """The members and prefix of ``url``; ``INVALID_PARAMETERS`` saying what is wrong with it."""
        if not is_etcd_url(url):
            raise _bad(url, "it does not start with etcd://")
        rest = url[len(SCHEME):]
        if "#" in rest:
            raise _bad(url, "it has a fragment; an etcd store URL takes none")
        rest, question, query = rest.partition("?")
        hosts, slash, prefix = rest.partition("/")
        if not hosts:
            raise _bad(url, "it names no host")
        endpoints = tuple(_endpoint(url, member) for member in hosts.split(","))
        if not slash or not prefix:
            raise _bad(url, "it names no store prefix after the hosts (etcd://h1:2379/strata)")
        try:
            check_prefix(prefix)
        except errors.InvalidParameters as exc:
            raise _bad(url, exc.message) from None
        if not question:
            return cls(endpoints, prefix)
        try:
            return cls(endpoints, prefix, EtcdLimits.of_query(query))
        except ValueError as exc:
            raise _bad(url, str(exc), _QUERY_FORM) from None

    def __str__(self) -> str:
        """The URL in its canonical form: every member's port, and only the limits that are not etcd's defaults."""
        members = ",".join(e.removeprefix("http://") for e in self.endpoints)
        return SCHEME + members + "/" + self.prefix + self.limits.query()


def _endpoint(url: str, member: str) -> str:
    found = _MEMBER.fullmatch(member)
    if found is None:
        raise _bad(url, f"{member!r} is not a host or host:port" if member else "it names an empty host")
    port_text = found["port"]
    if port_text is None:
        port = DEFAULT_PORT
    elif not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _bad(url, f"the port of {member!r} must be a number from 1 to 65535")
    else:
        port = int(port_text)
    return f"http://{found['host']}:{port}"


def _bad(url: str, why: str, form: str = _FORM) -> errors.InvalidParameters:
    return errors.InvalidParameters(f"{url!r} is not an etcd store URL: {why}; the form is {form}",
                                    parameter="path", url=url)
