#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use formaops_core::engine::{EngineConfig, ExecuteRequest, FormaOps};
use formaops_core::ids::{PromptId, UserId};
use formaops_core::prompt::PromptSpec;
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::MemoryStore;
use serde_json::{Map, Value, json};

pub fn config() -> EngineConfig {
    EngineConfig {
        backoff: formaops_core::engine::BackoffPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        },
        ..EngineConfig::default()
    }
}

pub async fn engine_with(mock: Arc<MockProvider>, config: EngineConfig) -> FormaOps {
    FormaOps::builder(Arc::new(MemoryStore::new()))
        .provider("mock", mock)
        .config(config)
        .start()
        .await
        .unwrap()
}

pub fn spec(name: &str) -> PromptSpec {
    serde_json::from_value(json!({
        "name": name,
        "template": "Say {{ word }}",
        "variables": [{"name": "word", "type": "string", "required": true}],
        "model": {"model": "mock"}
    }))
    .unwrap()
}

pub async fn prompt(engine: &FormaOps, user: UserId) -> PromptId {
    engine.create_prompt(user, spec("p")).await.unwrap().0.id
}

pub fn inputs(word: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("word".into(), Value::String(word.into()));
    m
}

pub fn request(prompt_id: PromptId, word: &str) -> ExecuteRequest {
    ExecuteRequest { prompt_id, inputs: inputs(word), ..Default::default() }
}
