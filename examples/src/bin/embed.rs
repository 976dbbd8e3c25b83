//! Embeds the FormaOps engine: in-memory store, mock provider, one prompt, one execution.
use formaops_core::engine::{ExecuteRequest, FormaOps};
use formaops_core::{ids::UserId, prompt::PromptSpec, provider::mock::MockProvider, store::MemoryStore};
use serde_json::json;
use std::sync::Arc;
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let engine = FormaOps::builder(store).provider("mock", Arc::new(MockProvider::new())).start().await?;
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "summarize", "template": "Summarize in one line: {{ text }}",
        "variables": [{"name": "text", "type": "string", "required": true}],
        "model": {"provider": "mock", "model": "gpt-4o-mini"}
    }))?;
    let (prompt, _) = engine.create_prompt(user, spec).await?;
    let inputs = json!({"text": "FormaOps runs prompts."}).as_object().cloned().unwrap_or_default();
    let request = ExecuteRequest { prompt_id: prompt.id, inputs, ..Default::default() };
    let done = engine.execute(user, request).await?;
    let m = done.metrics.unwrap_or_default();
    println!("status:  {:?}\noutput:  {}", done.status, done.output.unwrap_or_default());
    println!(
        "latency: {} ms\ntokens:  {} in / {} out",
        m.latency_ms, m.token_usage.input, m.token_usage.output
    );
    println!("cost:    {}", m.cost_usd.map_or("unpriced".to_string(), |c| format!("${c}")));
    engine.shutdown().await;
    Ok(())
}
