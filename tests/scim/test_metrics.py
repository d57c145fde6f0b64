"""SPEC §8: SCIM requests are counted on /metrics, by endpoint, method and status."""

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_scim_requests_are_counted_by_endpoint_method_and_status(harness):
    assert (
        harness.scim.post("/Users", json={"schemas": [CORE_USER], "userName": "m"}).status_code
        == 201
    )
    assert harness.scim.get("/Users/nobody").status_code == 404
    assert harness.client("/scim/v2", "wrong-token").get("/Users").status_code == 401

    text = harness.anonymous.get("/metrics").text

    assert 'idgate_scim_requests_total{endpoint="scim",method="POST",status="201"} 1.0' in text
    assert 'idgate_scim_requests_total{endpoint="scim",method="GET",status="404"} 1.0' in text
    assert 'idgate_scim_requests_total{endpoint="admin",method="GET",status="401"} 1.0' in text
    assert 'idgate_scim_seconds_count{endpoint="scim"} 2.0' in text
