import httpx


async def test_health_reports_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_openapi_docs_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert "/health" in (await client.get("/openapi.json")).json()["paths"]


async def test_openapi_documents_the_skill_payload(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/skill"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["userRequest"] == {"$ref": "#/components/schemas/UserRequest"}
    user_request = schema["components"]["schemas"]["UserRequest"]
    # Kakao's payload is tolerated as sent: a long utterance gets a Kakao reply, not a 422 (said in the schema).
    assert user_request["additionalProperties"] is True
    assert "maxLength" not in user_request["properties"]["utterance"]
    assert "2000" in user_request["properties"]["utterance"]["description"]
