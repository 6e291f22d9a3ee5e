"""``server.routes.Router.match``: paths already matched are remembered, with the same answers."""

from __future__ import annotations

import pytest

from server import routes
from server.problems import HTTPProblem
from server.routes import Router


def test_a_remembered_path_matches_as_the_first_time_with_params_of_the_callers_own() -> None:
    router = Router()
    route, params = router.match("/v4/storage/a%2Fb/read")
    assert (route.template, params) == ("/v4/storage/{storage}/read", {"storage": "a%2Fb"})
    params["storage"] = "changed by a caller"
    again, params_again = router.match("/v4/storage/a%2Fb/read")
    assert again is route and params_again == {"storage": "a%2Fb"}
    assert router.match("/v4/storage/c/read")[1] == {"storage": "c"}
    assert router.match("/healthz") == (router._static["/healthz"], {})


def test_unknown_paths_stay_404s_and_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "_MAX_MATCHED", 3)
    router = Router()
    for _ in range(2):
        with pytest.raises(HTTPProblem) as err:
            router.match("/v4/nowhere/x")
        assert err.value.status == 404
    for n in range(10):
        assert router.match(f"/v4/storage/n{n}/write")[1] == {"storage": f"n{n}"}
        assert len(router._matched) <= 3
    assert "/v4/nowhere/x" not in router._matched
    assert router.batched("POST", "/v4/storage/n9/write") and not router.batched("GET", "/v4/storage/n9/write")
    assert router.long_running("POST", "/v4/storage/n9/write") and not router.long_running("POST", "/nowhere")
