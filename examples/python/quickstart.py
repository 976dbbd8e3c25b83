import formaops

with formaops.Engine.open("memory://", provider="mock") as engine:  # or "sqlite:///formaops.db", provider="openai"
    prompt = engine.create_prompt(
        name="summarise",
        template="Summarise in {{ words }} words: {{ text }}",
        variables=[{"name": "text", "type": "string", "required": True}, {"name": "words", "type": "integer", "default_value": 12}],
    )
    result = engine.execute(prompt.id, {"text": "FormaOps runs prompts with retries, validation and metrics."})
    m = result.metrics
    print(f"status: {result.status}\noutput: {result.output}")
    print(f"latency: {m.latency_ms} ms, tokens: {m.token_usage.total}, cost: ${m.cost_usd:.6f}")
