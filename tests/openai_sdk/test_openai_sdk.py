"""The official `openai` Python SDK against the real server's OpenAI-compatible endpoint."""

import openai
import pytest
from openai import OpenAI


@pytest.fixture(scope="module")
def client(server, api_key) -> OpenAI:
    return OpenAI(base_url=server.base + "/openai/v1", api_key=api_key, max_retries=0)


@pytest.fixture(scope="module")
def essay(server, api_key) -> str:
    server.call(
        "POST",
        "/api/prompts",
        api_key,
        {
            "name": "essay",
            "template": "Write about {{ topic }}.",
            "variables": [{"name": "topic", "type": "string", "required": True}],
        },
    )
    return "formaops::essay"


def execution(server, api_key, response) -> dict:
    ex_id = response.headers["x-formaops-execution-id"]
    listed = server.call("GET", "/api/executions?limit=200", api_key)["items"]
    match = [e for e in listed if e["id"] == ex_id]
    assert len(match) == 1, "the call is listed in /api/executions"
    return match[0]


def test_managed_prompt_by_name(client, server, api_key, essay):
    raw = client.chat.completions.with_raw_response.create(
        model=essay, messages=[], extra_body={"inputs": {"topic": "tides"}}
    )
    c = raw.parse()
    assert c.object == "chat.completion"
    assert c.model == essay
    assert "tides" in c.choices[0].message.content
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.prompt_tokens_details.cached_tokens == 0
    assert c.usage.completion_tokens_details.reasoning_tokens == 0
    e = execution(server, api_key, raw)
    assert e["status"] == "COMPLETED"
    assert e["metrics"]["tokenUsage"]["total"] == c.usage.total_tokens


def test_pass_through(client, server, api_key):
    raw = client.chat.completions.with_raw_response.create(
        model="mock/any-model",
        messages=[{"role": "user", "content": "hello from the sdk"}],
        temperature=0.3,
        max_completion_tokens=64,
        seed=1,
    )
    c = raw.parse()
    assert c.choices[0].message.content
    e = execution(server, api_key, raw)
    assert (e["provider"], e["model"], e["status"]) == ("mock", "any-model", "COMPLETED")
    assert "mock/any-model" in [m.id for m in client.models.list()]


def test_streaming_with_usage(client, essay):
    chunks = list(
        client.chat.completions.create(
            model=essay,
            messages=[],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"inputs": {"topic": "rivers"}},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "rivers" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_a_streaming_provider_arrives_in_several_chunks(client):
    text = "tell me something about rivers and their long journeys to the sea"
    chunks = list(
        client.chat.completions.create(
            model="mock-stream/any-model",
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(pieces) >= 2, pieces
    assert "".join(pieces) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_invalid_inputs_raise_with_our_message(client, essay):
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client.chat.completions.create(model=essay, messages=[], extra_body={"inputs": {"topic": 3}})
    assert "inputs.topic" in str(err.value)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=essay, messages=[], n=2, extra_body={"inputs": {"topic": "a"}})
    assert "n = 1" in str(err.value)


def test_wrong_key(server):
    bad = OpenAI(base_url=server.base + "/openai/v1", api_key="fos_not_a_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="formaops::essay", messages=[])


def test_unknown_prompt(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="formaops::no-such-prompt", messages=[])
    assert "no-such-prompt" in str(err.value)


def test_response_format(client, essay):
    # The mock provider answers whatever the format; the SDK's typed forms are accepted.
    for fmt in (
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "essay", "schema": {"type": "object"}, "strict": False}},
    ):
        c = client.chat.completions.create(
            model=essay, messages=[], response_format=fmt, extra_body={"inputs": {"topic": "tides"}}
        )
        assert "tides" in c.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=essay, messages=[], response_format={"type": "xml"}, extra_body={"inputs": {"topic": "a"}}
        )
    assert err.value.param == "response_format.type"
    assert "xml" in str(err.value)
